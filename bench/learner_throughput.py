"""Learner speed: what the RL machinery costs over bare training, padding, weight sync.

1. One learner update (policy and value model, DeepSpeed ZeRO-2, the RLEF objective,
   micro-batches as planned) on a fixed batch of real rollouts (toy episodes played by
   the tiny model on vLLM), against a bare forward + backward + AdamW step of the same two
   models on the same micro-batches in plain torch, in the same process, one rank.
   The preparation pass (reference and value forwards) is printed apart: it
   is PPO's own cost, not overhead.
2. The share of padding among the token positions computed, with length bucketing, and
   without (each update as one padded batch).
3. Weight sync of a ~10M-parameter model from a learner rank to a vLLM engine actor, by
   both transports, against moving the same bytes between the same kind of processes as
   one buffer through Ray's object store (and a local memory copy, for scale). vLLM's
   own loading of the received weights (`reload_weights`; on CPU it repacks every linear
   layer) is printed apart: it is the same whatever brings the weights.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from engines.generation import EngineConfig, ModelConfig, SamplingConfig
from launch.prepare_tiny import TinyModelConfig, prepare
from learner.batch import collate
from learner.config import LearnerConfig
from learner.group import store_rollouts
from learner.packing import padding_fraction, placement, plan_micro_batches, split_across_ranks
from learner.rank import PAD_ID, LearnerRank, update_parts


def play_rollouts(model: ModelConfig, episodes: int) -> list:
    """Toy episodes played by a vLLM inference actor (vLLM takes the process's default
    torch.distributed group, so not in this process, where the rank runs)."""
    from actors.dialog import DialogConfig
    from actors.inference import InferencePool
    from actors.seeds import EpisodeSeeds
    from problems.toy import generate_toy
    from sandbox import SandboxConfig

    dialog = DialogConfig(sampling=SamplingConfig(temperature=1.0, max_new_tokens=192))
    pool = InferencePool(
        model, EngineConfig(backend="vllm"), dialog, SandboxConfig(workers=2), num_actors=1
    )
    try:
        return pool.play(generate_toy("train", episodes, seed=3), EpisodeSeeds(3, "bench", 0))
    finally:
        pool.shutdown()


def bare_step(modules, optimizers, rollouts, micro_batches) -> float:
    """Forward, a plain loss on the reply tokens, backward, AdamW: seconds."""
    lengths = [len(r.token_ids) for r in rollouts]
    started = time.perf_counter()
    for micro_batch in micro_batches:
        order, places = placement(lengths, micro_batch)
        batch = collate([rollouts[i] for i in order], PAD_ID, places)
        for module in modules:
            output = module(**batch.model_inputs())
            hidden = output.logits if hasattr(output, "logits") else output.last_hidden_state
            hidden[batch.token_rows, batch.token_positions - 1].float().mean().backward()
    for optimizer in optimizers:
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - started


def update_overhead(model: ModelConfig, rollouts: list, config: LearnerConfig) -> dict:
    """One rank in this process: the learner's update (one per iteration) against the
    bare step on the same micro-batches (the rank's plan of one part on one rank)."""
    import torch.distributed as dist
    from transformers import AutoModel, AutoModelForCausalLM

    rank = LearnerRank(config, model, rank=0, world_size=1)
    rank.setup(*rank.address())
    lengths = [len(r.token_ids) for r in rollouts]
    [micro_batches] = plan_micro_batches(
        lengths, [list(range(len(rollouts)))], config.micro_batch_tokens
    )
    modules = [
        AutoModelForCausalLM.from_pretrained(model.location()),
        AutoModel.from_pretrained(model.location()),
    ]
    optimizers = [torch.optim.AdamW(m.parameters(), lr=config.lr) for m in modules]
    bare, update, prepare_s = [], [], []
    for iteration in range(4):  # the first is a warm-up
        bare.append(bare_step(modules, optimizers, rollouts, micro_batches))
        stored = store_rollouts(rollouts, iteration, len(rollouts))
        metrics = rank.train(stored, iteration, len(rollouts))
        [step] = metrics["updates"]
        update.append(step["time_s"])
        prepare_s.append(metrics["time_prepare_s"])
    dist.destroy_process_group()
    return {
        "bare_s": statistics.median(bare[1:]),
        "update_s": statistics.median(update[1:]),
        "prepare_s": statistics.median(prepare_s[1:]),
        "micro_batches": len(micro_batches),
        "tokens": sum(lengths),
    }


def padding(rollouts: list, config: LearnerConfig, ranks: int) -> tuple[float, float]:
    lengths = [len(r.token_ids) for r in rollouts]
    packed, whole = [], []
    for part in update_parts(len(rollouts), config.updates_per_iteration, 0, 0):
        shares = split_across_ranks(lengths, part, ranks)
        packed.append(plan_micro_batches(lengths, shares, config.micro_batch_tokens))
        whole.append([[[[i] for i in share]] for share in shares])
    merge = lambda plans: [[rows for plan in plans for rows in plan[r]] for r in range(ranks)]  # noqa: E731
    return padding_fraction(lengths, merge(packed)), padding_fraction(lengths, merge(whole))


def ten_million_parameter_model(tiny: Path, out: Path) -> ModelConfig:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=1024,
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=9,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(out)
    return ModelConfig(str(out))


def weight_sync(model: ModelConfig) -> dict:
    import numpy as np
    import ray

    from actors.dialog import DialogConfig
    from actors.inference import InferencePool
    from learner.group import LearnerGroup
    from sandbox import SandboxConfig

    @ray.remote(num_cpus=0)
    def touch(buffer) -> int:
        return int(buffer[::4096].sum())

    config = LearnerConfig(num_ranks=1, micro_batch_tokens=4096)
    group = LearnerGroup(config, model)
    pool = InferencePool(
        model,
        EngineConfig(backend="vllm", max_model_len=512),
        DialogConfig(),
        SandboxConfig(workers=1),
        num_actors=1,
        actor_options=lambda index: {"num_cpus": 1},
    )
    try:
        state = ray.get(group.ranks[0].policy_state.remote())
        size = sum(t.numel() * t.element_size() for t in state.values())
        params = sum(t.numel() for t in state.values())
        times = {key: [] for key in ("object_store", "distributed", "baseline", "memcpy")}
        loads = {"object_store": [], "distributed": []}
        buffer = np.ones(size, dtype=np.uint8)
        for version in range(1, 4):
            for transport in ("object_store", "distributed"):
                sync = group.sync_weights(pool, version, transport)
                times[transport].append(sync["sync_s"])
                loads[transport].append(sync["engine_load_s"])
            started = time.perf_counter()
            ray.get(touch.remote(ray.put(buffer)))
            times["baseline"].append(time.perf_counter() - started)
            started = time.perf_counter()
            buffer.copy()
            times["memcpy"].append(time.perf_counter() - started)
        # The first distributed sync also opens the group: report steady state.
        result = {key: statistics.median(values[1:]) for key, values in times.items()}
        result.update({f"{key}_load": statistics.median(v[1:]) for key, v in loads.items()})
        return {**result, "bytes": size, "parameters": params}
    finally:
        pool.shutdown()
        group.shutdown()


def main(argv: list[str] | None = None) -> None:
    import ray

    parser = argparse.ArgumentParser(prog="python -m bench.learner_throughput")
    parser.add_argument("--episodes", type=int, default=64)
    args = parser.parse_args(argv)
    tiny = TinyModelConfig()
    prepare(tiny)
    model = ModelConfig(path=str(tiny.output_path()))
    config = LearnerConfig(
        num_ranks=1,
        cpus_per_rank=2,
        updates_per_iteration=1,
        micro_batch_tokens=4096,
        lr=1e-6,
        value_lr=1e-6,
    )
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        rollouts = play_rollouts(model, args.episodes)
        cost = update_overhead(model, rollouts, config)
        packed, whole = padding(rollouts, replace(config, updates_per_iteration=4), ranks=2)
        with tempfile.TemporaryDirectory() as scratch:
            sync = weight_sync(ten_million_parameter_model(tiny.output_path(), Path(scratch)))
    finally:
        ray.shutdown()
    print(
        f"learner: tiny model, {len(rollouts)} real toy rollouts ({cost['tokens']} tokens, "
        f"{cost['micro_batches']} micro-batches of <= {config.micro_batch_tokens} tokens), 1 rank"
    )
    ratio = cost["update_s"] / cost["bare_s"]
    print(f"  bare fwd+bwd+AdamW, policy and value, plain torch : {cost['bare_s']:6.3f} s")
    print(f"  learner update (ZeRO-2, RLEF losses, metrics)     : {cost['update_s']:6.3f} s")
    print(
        f"  ratio: {ratio:.2f}x (goal <= 1.3x); preparation pass (ref/old/value "
        f"forwards, PPO's own cost): {cost['prepare_s']:.3f} s"
    )
    print(
        f"  padding computed: {100 * packed:.1f}% with packing (goal < 10%), "
        f"{100 * whole:.1f}% as one padded batch per rank and update"
    )
    mb = sync["bytes"] / 2**20
    print(
        f"weight sync: {sync['parameters'] / 1e6:.1f}M parameters ({mb:.0f} MiB), "
        "learner rank -> vLLM engine actor, median of 2 syncs"
    )
    print(
        f"  one buffer through the object store (baseline)  : {sync['baseline']:6.3f} s"
        f"   (local memcpy {sync['memcpy']:.3f} s)"
    )
    for transport in ("object_store", "distributed"):
        total, load = sync[transport], sync[f"{transport}_load"]
        print(
            f"  {transport:<13} sync {total:6.3f} s = transfer {total - load:6.3f} s "
            f"({(total - load) / sync['baseline']:.1f}x baseline, goal <= 3x) "
            f"+ vLLM's own load {load:.3f} s"
        )


if __name__ == "__main__":
    main()
