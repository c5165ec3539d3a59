#!/usr/bin/env bash
# The GPU paths, checked on one CUDA GPU in one command (after `make install FLAVOUR=gpu`):
#
#   bash launch/gpu_check.sh
#
# 1. `pytest -m gpu tests/test_gpu.py`: the CUDA engine's log-probs against transformers,
#    the NCCL weight transport (it needs 2 GPUs: skipped on one, with the reason), and a
#    bf16 ZeRO-2 learner step against an fp32 one.
# 2. A randomly initialised Qwen2 of Qwen2-0.5B's shape (hidden 896, 24 layers, 14 query
#    and 2 key/value heads, MLP 4864) with the tiny model's tokenizer, into a temp folder:
#    359M parameters, Qwen2-0.5B's 494M less most of its 151,936-token embedding.
# 3. One sync training iteration of it (`python -m launch.train`, 64 toy rollouts, 1@3
#    on 8 problems before and after): one learner rank in bf16 and one vLLM engine,
#    sharing the GPU. The run folder goes to outputs/gpu_check/<time>/ (its checkpoint is
#    deleted: ~10 GB of optimizer states, not what this checks).
# 4. From its metrics.jsonl: generation tokens/s, learner tokens/s, weight-sync seconds.
#
# Sized to finish in under 10 minutes on one GPU. Where there is no CUDA GPU it refuses
# with one line and exit status 2.
set -euo pipefail

cd "$(dirname "$0")/.."
python=python
if [ -x .venv/bin/python ]; then
  python=.venv/bin/python
fi

refuse() {
  echo "gpu_check.sh: $*" >&2
  exit 2
}

command -v nvidia-smi >/dev/null 2>&1 ||
  refuse "no NVIDIA GPU on this machine (nvidia-smi not found): run it on a CUDA machine," \
    "after \`make install FLAVOUR=gpu\`"
"$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' ||
  refuse "torch sees no CUDA device (a CPU build of torch?): install the torch build" \
    "matching your CUDA, then \`make install FLAVOUR=gpu\`"
"$python" -c 'import importlib.metadata as m; m.version("vllm")' >/dev/null 2>&1 ||
  refuse "vLLM's CUDA build (package vllm) is not installed: \`make install FLAVOUR=gpu\`"

gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
echo "gpu_check: $gpu; 1. the GPU tests"
"$python" -m pytest -q -m gpu tests/test_gpu.py

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "gpu_check: 2. a random Qwen2 of Qwen2-0.5B's shape, in $work/model"
"$python" - "$work/model" <<'EOF'
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

folder = Path(sys.argv[1])
folder.mkdir(parents=True)
for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
    shutil.copy(Path("artifacts/tiny") / name, folder / name)
tokenizer = AutoTokenizer.from_pretrained(folder)
# Qwen2-0.5B's config.json, but for the vocabulary: the tiny tokenizer's 1,024 tokens in
# place of Qwen's 151,936 (a 136M-parameter embedding), which the toy problems need not.
config = Qwen2Config(
    vocab_size=len(tokenizer),
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    tie_word_embeddings=True,
    bos_token_id=tokenizer.bos_token_id,
    eos_token_id=tokenizer.eos_token_id,
    pad_token_id=tokenizer.pad_token_id,
)
torch.manual_seed(0)
model = Qwen2ForCausalLM(config)
model.to(torch.bfloat16).save_pretrained(folder)
count = sum(parameter.numel() for parameter in model.parameters())
print(f"gpu_check: {count / 1e6:.0f}M parameters, bfloat16")
EOF

run_dir="outputs/gpu_check/$(date -u +%Y%m%d-%H%M%S)"
echo "gpu_check: 3. one training iteration, run folder $run_dir"
# The inference actor reserves no GPU (the learner rank's placement takes Ray's only one)
# yet must see it: Ray leaves CUDA_VISIBLE_DEVICES alone for an actor of 0 GPUs unless
# this is 1. The engine takes 30% of the GPU's memory, which leaves the learner (policy,
# value and reference models, fp32 optimizer states, activations: ~25 GB) room beside it.
# The weights go through the object store: NCCL refuses two ranks on one GPU.
export RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=0
"$python" -m launch.train \
  model.path="$work/model" model.dtype=bfloat16 \
  engine=gpu engine.gpu_memory_utilization=0.3 actors.gpus_per_inference=0 \
  learner.device=cuda learner.dtype=bfloat16 learner.num_ranks=1 \
  learner.transport=object_store \
  +experiment=sync trainer.iterations=1 trainer.rollouts_per_iteration=64 \
  eval.problems=8 eval.rollouts=1 \
  hydra.run.dir="$run_dir"
rm -rf "$run_dir/checkpoints"

echo "gpu_check: 4. what it measured ($run_dir/metrics.jsonl)"
"$python" - "$run_dir/metrics.jsonl" <<'EOF'
import json
import sys

with open(sys.argv[1]) as lines:
    [metrics] = [json.loads(line) for line in lines]
generated, generate_s = metrics["tokens_generated"], metrics["time_generate_s"]
print(
    f"  generation  {generated / generate_s:10,.0f} tokens/s  "
    f"({generated:,} reply tokens of {metrics['rollouts']} rollouts in {generate_s:.1f} s)"
)
print(f"  learner     {metrics['learner_tokens_per_s']:10,.0f} tokens/s  (learner_tokens_per_s)")
print(
    f"  sync        {metrics['time_sync_s']:10.2f} s         (time_sync_s; of it "
    f"{metrics['time_engine_load_s']:.2f} s the engine's own load)"
)
EOF
