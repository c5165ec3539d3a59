"""Streaming into the learner, and what the training driver holds.

1. The time from the last rollout's arrival to the learner's first optimizer step. One
   learner rank in this process reads an iteration of real toy rollouts (played by the
   tiny model on vLLM) from a replay queue actor, fed one chunk every `--gap` seconds as
   inference actors would. Streamed (now): each chunk is prepared as it comes. Whole
   (before: the driver handed the learner the whole iteration once the last came): the
   same chunks as one list. Same rank, same plan, in the same process; the ratio is
   whole over streamed.
2. The training driver's resident memory after each iteration of a short sync run of
   the real app (`python -m launch.train`, its `driver_rss_mib`): flat, whatever the
   rollouts weigh, since it holds their references only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from engines.generation import ModelConfig
from launch.prepare_tiny import TinyModelConfig, prepare
from learner.config import LearnerConfig
from learner.group import store_rollouts
from learner.rank import LearnerRank

from .learner_throughput import play_rollouts

CHUNK = 8


def feed(queue, stored: list, version: int, gap_s: float) -> None:
    """Put the chunks, played by weights `version`, into `queue`, one every `gap_s`
    seconds."""
    import ray

    for start in range(0, len(stored), CHUNK):
        time.sleep(gap_s)
        ray.get(queue.put.remote(version, stored[start : start + CHUNK]))


def last_rollout_to_step(model: ModelConfig, rollouts: list, gap_s: float) -> dict:
    """Per mode, the median over iterations of the seconds from the last arrival to the
    first optimizer step, and of the preparation's seconds."""
    import torch.distributed as dist

    from actors.replay_queue import ReplayQueueActor

    config = LearnerConfig(
        num_ranks=1,
        cpus_per_rank=2,
        updates_per_iteration=2,
        micro_batch_tokens=4096,
        lr=1e-6,
        value_lr=1e-6,
    )
    rank = LearnerRank(config, model, rank=0, world_size=1)
    rank.setup(*rank.address())
    found = {"streamed": [], "whole": [], "prepare": []}
    try:
        for iteration in range(1, 7):  # the first two (one per mode) are warm-ups
            streamed = iteration % 2 == 1
            stored = store_rollouts(rollouts, iteration, CHUNK)
            if streamed:
                queue = ReplayQueueActor.remote(len(rollouts), 0)
                feeder = threading.Thread(target=feed, args=(queue, stored, iteration - 1, gap_s))
                feeder.start()
                metrics = rank.train(queue, iteration, len(rollouts))
                feeder.join()
            else:  # handed over whole, as the last chunk comes
                metrics = rank.train(stored, iteration, len(rollouts))
            if iteration > 2:
                mode = "streamed" if streamed else "whole"
                found[mode].append(metrics["time_last_rollout_to_step_s"])
                found["prepare"].append(metrics["time_prepare_s"])
    finally:
        dist.destroy_process_group()
    return {name: statistics.median(values) for name, values in found.items()}


def driver_memory(model: ModelConfig) -> list[dict]:
    """The metrics of a 3-iteration sync run of the training app."""
    with tempfile.TemporaryDirectory() as run_dir:
        command = [
            sys.executable,
            "-m",
            "launch.train",
            f"model.path={model.path}",
            f"run.dir={run_dir}",
            "+experiment=sync",
            "trainer.iterations=3",
            "trainer.rollouts_per_iteration=32",
            "eval.problems=4",
            "eval.rollouts=1",
            "eval.every=0",
            "run.report=false",
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=sys.stderr)
        lines = Path(run_dir, "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


def main(argv: list[str] | None = None) -> None:
    import ray

    parser = argparse.ArgumentParser(prog="python -m bench.streaming")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between chunks")
    args = parser.parse_args(argv)
    tiny = TinyModelConfig()
    prepare(tiny)
    model = ModelConfig(path=str(tiny.output_path()))
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        rollouts = play_rollouts(model, args.episodes)
        timing = last_rollout_to_step(model, rollouts, args.gap)
    finally:
        ray.shutdown()
    tokens = sum(len(r.token_ids) for r in rollouts)
    print(
        f"streaming: {len(rollouts)} real toy rollouts ({tokens} tokens) in chunks of {CHUNK}, "
        f"one every {args.gap:g} s, 1 learner rank"
    )
    print(
        f"  last rollout -> first optimizer step, whole iteration at once (before): "
        f"{timing['whole']:6.3f} s"
    )
    print(
        f"  last rollout -> first optimizer step, prepared as chunks come (now)   : "
        f"{timing['streamed']:6.3f} s"
    )
    print(
        f"  ratio: {timing['whole'] / timing['streamed']:.1f}x sooner "
        f"(preparation {timing['prepare']:.3f} s of compute per iteration)"
    )
    metrics = driver_memory(model)
    resident = ", ".join(f"{m['driver_rss_mib']:.0f}" for m in metrics)
    played = sum(m["rollouts"] for m in metrics)
    print(
        f"driver resident memory after each of {len(metrics)} sync iterations "
        f"({played} rollouts played in all): {resident} MiB"
    )


if __name__ == "__main__":
    main()
