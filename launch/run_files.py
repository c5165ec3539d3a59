"""What a training run leaves in its folder, written as it goes.

- `metrics.jsonl`: one JSON object per iteration (appended, flushed: a crash keeps every
  finished iteration);
- `tensorboard/`: the same scalars as TensorBoard event files;
- `rollouts/iter-NNNNNN.parquet`: every rollout of the iteration, one row each, in
  episode order;
- `rollouts/eval-NNNNNN.parquet`: the 1@3 rollouts of the evaluation after iteration N
  (0: before training); `rollouts/eval_random-NNNNNN.parquet` the same dialogs with
  random feedback (the first and the last evaluation, `eval.random_control`);
both written by the `RolloutStore` actor from the object store, not by the driver;
- `train.log`: the run's own lines, timestamped (Hydra's log lines go there too).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from engines.rollout import Rollout, StoredRollout

LOG_FILE = "train.log"
METRICS_FILE = "metrics.jsonl"
ROLLOUTS_DIR = "rollouts"
TENSORBOARD_DIR = "tensorboard"
EVAL_BEFORE_FILE = "eval_before.json"
"""1@3 and solve rates by turn before training, as `[1@3, {"solve_rate_turn_t": ...}]`
(for a resumed run's summary and the report's starting point)."""


def task_rewards(rollouts: list[Rollout]) -> list[list[float]]:
    """Each turn's reward from the task alone: `learner.algo.turn_rewards` without the KL
    penalty (-0.2 for a reply without valid code, +1 / -1 on the last turn for the final
    verdict); per rollout, per turn."""
    import torch

    from learner.algo import turn_rewards

    turns = [turn for rollout in rollouts for turn in rollout.turns]
    if not turns:
        return [[] for _ in rollouts]
    last = [index == len(r.turns) - 1 for r in rollouts for index in range(len(r.turns))]
    passed = [r.passed for r in rollouts for _ in r.turns]
    rewards = turn_rewards(
        torch.tensor([turn.code is not None for turn in turns]),
        torch.tensor(last),
        torch.tensor(passed),
        torch.zeros(len(turns), dtype=torch.float64),
    ).tolist()
    per_rollout, start = [], 0
    for rollout in rollouts:
        per_rollout.append(rewards[start : start + len(rollout.turns)])
        start += len(rollout.turns)
    return per_rollout


def rollout_table(rollouts: list[Rollout], iteration: int):
    """The iteration's rollouts as a pyarrow table: problem, verdict, and per turn the
    reply, the code, whether it passed the feedback tests, the feedback, the reward, the
    weight version and the sampling seed."""
    import pyarrow as pa

    rewards = task_rewards(rollouts)
    turn_type = pa.struct(
        [
            ("reply", pa.string()),
            ("code", pa.string()),
            ("tests_passed", pa.bool_()),
            ("feedback", pa.string()),
            ("reward", pa.float64()),
            ("weight_version", pa.int64()),
            ("seed", pa.int64()),
        ]
    )
    columns = {
        "iteration": pa.array([iteration] * len(rollouts), pa.int64()),
        "problem": pa.array([r.problem for r in rollouts], pa.string()),
        "passed": pa.array([r.passed for r in rollouts], pa.bool_()),
        "overflow": pa.array([r.overflow for r in rollouts], pa.bool_()),
        "tokens": pa.array([len(r.token_ids) for r in rollouts], pa.int64()),
        "turns": pa.array(
            [
                [
                    {
                        "reply": turn.reply,
                        "code": turn.code,
                        "tests_passed": turn.tests_passed,
                        "feedback": turn.feedback,
                        "reward": reward,
                        "weight_version": turn.weight_version,
                        "seed": turn.seed,
                    }
                    for turn, reward in zip(r.turns, rollout_rewards, strict=True)
                ]
                for r, rollout_rewards in zip(rollouts, rewards, strict=True)
            ],
            pa.list_(turn_type),
        ),
    }
    return pa.table(columns)


def rollouts_path(directory: str | Path, phase: str, iteration: int) -> Path:
    """The Parquet file of `phase`'s rollouts (`iter`, `eval` or `eval_random`) of
    `iteration`."""
    return Path(directory) / ROLLOUTS_DIR / f"{phase}-{iteration:06d}.parquet"


class RolloutStore:
    """Owns a run's rollouts in Ray's object store, and writes them as Parquet. The
    training loop runs it as an actor of its own, alive for the run: an object belongs
    to the process that put it, and is lost with it, so the inference actors (restarted
    when they die) hand their rollouts here rather than keep them. The driver never
    holds them."""

    def keep(self, rollouts: list[Rollout]) -> list:
        """Put each of `rollouts` into the object store; their references."""
        import ray

        return [ray.put(rollout) for rollout in rollouts]

    def write(self, path: str, iteration: int, stored: list[StoredRollout]) -> int:
        """`stored`'s rollouts (fetched here), in episode order, to `path`, as rollouts of
        `iteration`; how many."""
        import pyarrow.parquet as pq
        import ray

        stored = sorted(stored, key=lambda entry: entry.summary.episode)
        rollouts = ray.get([entry.reference for entry in stored])
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(rollout_table(rollouts, iteration), path)
        return len(rollouts)


class RunLog:
    """The run's own lines (the data loaded, every iteration's summary, why it stopped):
    on the terminal, above the progress bar, and appended to the run folder's
    `train.log` with the time."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LOG_FILE

    def __call__(self, line: str) -> None:
        """Print `line` and keep it in the log."""
        from tqdm import tqdm

        tqdm.write(line)
        sys.stdout.flush()  # a Ray job's log follows the driver's stdout as it comes
        self.record(line)

    def record(self, line: str) -> None:
        """Keep `line` (which went to the terminal another way) in the log only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a") as handle:
            handle.writelines(f"[{stamp}] {part}\n" for part in line.splitlines())


class RunFiles:
    """Appends a run's metrics, TensorBoard scalars and rollouts under `directory`."""

    def __init__(self, directory: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.directory = Path(directory)
        (self.directory / ROLLOUTS_DIR).mkdir(parents=True, exist_ok=True)
        self.tensorboard = SummaryWriter(str(self.directory / TENSORBOARD_DIR))

    def write_iteration(self, metrics: dict) -> None:
        """The iteration's line of `metrics.jsonl`, and its TensorBoard scalars."""
        iteration = metrics["iteration"]
        with open(self.directory / METRICS_FILE, "a") as handle:
            handle.write(json.dumps(metrics) + "\n")
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and name != "iteration" and math.isfinite(value):
                self.tensorboard.add_scalar(name, value, iteration)
        self.tensorboard.flush()

    def truncate_after(self, iteration: int) -> None:
        """Forget what iterations after `iteration` wrote (a resumed run redoes them)."""
        kept = [m for m in read_metrics(self.directory) if m["iteration"] <= iteration]
        temporary = self.directory / f".{METRICS_FILE}.tmp"
        temporary.write_text("".join(json.dumps(m) + "\n" for m in kept))
        temporary.replace(self.directory / METRICS_FILE)
        for path in (self.directory / ROLLOUTS_DIR).glob("*-*.parquet"):
            if int(path.stem.partition("-")[2]) > iteration:
                path.unlink()

    def close(self) -> None:
        self.tensorboard.close()


def write_eval_before(directory: str | Path, solved: float, turns: dict) -> None:
    """Keep the evaluation before training: 1@3 and the solve rates by turn."""
    (Path(directory) / EVAL_BEFORE_FILE).write_text(json.dumps([solved, turns]))


def read_eval_before(directory: str | Path) -> tuple[float, dict] | None:
    """The evaluation before training (1@3, solve rates by turn), if the run wrote it."""
    path = Path(directory) / EVAL_BEFORE_FILE
    if not path.exists():
        return None
    solved, turns = json.loads(path.read_text())
    return solved, turns


def read_metrics(directory: str | Path) -> list[dict]:
    """Every iteration's metrics of a run folder, in order."""
    path = Path(directory) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
