"""Rollout throughput: vLLM against the transformers backend, on the same 3-turn episodes.

Plays the same toy-contest episodes with each engine on the tiny model (built by
`launch.prepare_tiny` if needed), with and without pipelining, and prints generated
tokens/s, dialogs/s, the share of the rollout phase the engine spent generating (the
time inside its calls over the phase's wall-clock time), and the vLLM/transformers ratio.
"""

from __future__ import annotations

import argparse
import time

from actors.dialog import DialogConfig, play_episodes
from actors.seeds import EpisodeSeeds
from engines.backend import make_engine
from engines.generation import EngineConfig, ModelConfig, SamplingConfig
from launch.prepare_tiny import TinyModelConfig, prepare
from problems.toy import generate_toy
from sandbox import Sandbox, SandboxConfig


class BusyEngine:
    """The engine, with the time spent inside its `generate` calls added up."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.busy_s = 0.0

    def generate(self, *args):
        started = time.perf_counter()
        try:
            return self.engine.generate(*args)
        finally:
            self.busy_s += time.perf_counter() - started


def measure(engine, problems, sandbox: Sandbox, tokenizer, groups: int) -> dict:
    dialog = DialogConfig(
        sampling=SamplingConfig(temperature=1.0, max_new_tokens=192), pipeline_groups=groups
    )
    warm_up, measured = EpisodeSeeds(0, "bench", 0), EpisodeSeeds(0, "bench", 1)
    play_episodes(problems[:8], engine, sandbox.run_many, tokenizer, dialog, warm_up)
    timed = BusyEngine(engine)
    started = time.perf_counter()
    # Every engine and pipelining setting plays the same requests, with the same seeds.
    rollouts = play_episodes(problems, timed, sandbox.run_many, tokenizer, dialog, measured)
    elapsed = time.perf_counter() - started
    tokens = sum(sum(r.trained_mask) for r in rollouts)
    return {
        "seconds": elapsed,
        "tokens_per_s": tokens / elapsed,
        "dialogs_per_s": len(rollouts) / elapsed,
        "busy": timed.busy_s / elapsed,
        "turns": sum(len(r.turns) for r in rollouts) / len(rollouts),
    }


def main(argv: list[str] | None = None) -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(prog="python -m bench.rollout_throughput")
    parser.add_argument("--episodes", type=int, default=64)
    args = parser.parse_args(argv)
    tiny = TinyModelConfig()
    prepare(tiny)
    model = ModelConfig(path=str(tiny.output_path()))
    tokenizer = AutoTokenizer.from_pretrained(model.location())
    problems = generate_toy("valid", args.episodes)
    results = {}
    with Sandbox(SandboxConfig(workers=2)) as sandbox:
        for backend in ("hf", "vllm"):
            engine = make_engine(EngineConfig(backend=backend), model)
            for groups in (1, 2):
                results[backend, groups] = measure(engine, problems, sandbox, tokenizer, groups)
    print(
        f"rollout throughput: {args.episodes} toy episodes of up to 3 turns, tiny model; "
        "pipeline groups: 1 = generate then judge, 2 = judge one group while generating another"
    )
    for (backend, groups), r in results.items():
        print(
            f"  {backend:<5} groups {groups}  {r['seconds']:6.2f} s  "
            f"{r['tokens_per_s']:7.0f} tokens/s  {r['dialogs_per_s']:6.2f} dialogs/s  "
            f"{r['turns']:.2f} turns/dialog  engine busy {100 * r['busy']:.0f}%"
        )
    ratio = results["vllm", 2]["tokens_per_s"] / results["hf", 2]["tokens_per_s"]
    print(
        f"  vLLM / transformers: {ratio:.1f}x tokens/s (goal >= 2x); vLLM engine busy "
        f"{100 * results['vllm', 2]['busy']:.0f}% with pipelining (goal >= 90%)"
    )


if __name__ == "__main__":
    main()
