"""Faults dealt to a training run on a cluster of raylets on this machine, and the check
that the run lost nothing through them (launch/rehearse.py, tests/test_multinode.py).

The faults act on processes, as real ones do: a node is lost when its raylet and every
process it started are killed (SIGKILL, no goodbye to the head); an engine hangs when its
process is stopped (SIGSTOP: Ray still sees it alive); a learner rank dies when its
process is killed. Actors are found by the process ids `placement.json` records, and
workers by the title Ray gives a worker's process while it runs a method
(`ray::<Class>.<method>`).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

PLAYING = "ray::RolloutWorker.play_to_store"
"""The title of an engine's process while it plays a chunk."""


class DrillError(RuntimeError):
    """A drill could not be dealt (no such process); the message says which."""


def raylet_of(pid: int):
    """The raylet process that started worker `pid` (its nearest `raylet` ancestor)."""
    import psutil

    process = psutil.Process(pid)
    for parent in process.parents():
        if parent.name() == "raylet":
            return parent
    raise DrillError(f"process {pid} has no raylet among its parents")


def raylets_in(temp_dir_prefix: str) -> set[int]:
    """The pids of the live raylets whose temp dir starts with `temp_dir_prefix` (the
    rehearsal gives each node a temp dir of its own, named after its role)."""
    import psutil

    found = set()
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] != "raylet":
            continue
        for argument in process.info["cmdline"] or ():
            if argument.startswith(f"--temp_dir={temp_dir_prefix}"):
                found.add(process.pid)
    return found


def kill_node_of(pid: int) -> int:
    """Lose the node of worker `pid`: SIGKILL its raylet and every process under it; the
    raylet's pid."""
    import psutil

    raylet = raylet_of(pid)
    doomed = [raylet, *raylet.children(recursive=True)]
    for process in doomed:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    return raylet.pid


def playing_engine(raylets: set[int] | None = None, timeout_s: float = 120):
    """The process of an engine that is playing a chunk, under one of `raylets` (pids;
    None: any), once there is one."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in psutil.process_iter(["cmdline"]):
            try:
                if PLAYING not in " ".join(process.info["cmdline"] or []):
                    continue
                if raylets is None or raylets & {p.pid for p in process.parents()}:
                    return process
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    raise DrillError(f"no engine played a chunk within {timeout_s:.0f} s")


def stop_a_playing_engine(raylets: set[int] | None = None, timeout_s: float = 120) -> int:
    """SIGSTOP the process of an engine that is playing a chunk, under one of `raylets`
    (pids; None: any); its pid."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while True:
        process = playing_engine(raylets, max(0.0, deadline - time.monotonic()))
        try:
            process.send_signal(signal.SIGSTOP)
        except psutil.NoSuchProcess:  # its chunk ended meanwhile: the next one
            continue
        return process.pid


def kill_process(pid: int) -> None:
    """SIGKILL `pid` (a learner rank's process)."""
    import psutil

    try:
        psutil.Process(pid).send_signal(signal.SIGKILL)
    except psutil.NoSuchProcess as exc:
        raise DrillError(f"process {pid} is gone already") from exc


def lost_anything(run_dir: str | Path, expected: list[list[str]]) -> list[str]:
    """What the run in `run_dir` lost or repeated, against `expected` (each iteration's
    problem names, in the data order of an uninterrupted run): one line per fault found,
    none if every iteration has exactly its rollouts, once each, in that order."""
    import pyarrow.parquet as pq

    run_dir = Path(run_dir)
    metrics_file = run_dir / "metrics.jsonl"
    if not metrics_file.exists():
        return [f"{metrics_file} is missing"]
    lines = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    faults = []
    iterations = [m["iteration"] for m in lines]
    if iterations != list(range(1, len(expected) + 1)):
        faults.append(f"metrics.jsonl has iterations {iterations}, not 1..{len(expected)}")
    for iteration, names in enumerate(expected, start=1):
        path = run_dir / "rollouts" / f"iter-{iteration:06d}.parquet"
        if not path.exists():
            faults.append(f"iteration {iteration}: no {path.name}")
            continue
        played = pq.read_table(path, columns=["problem"]).column("problem").to_pylist()
        if played != names:
            misplaced = sum(a != b for a, b in zip(played, names, strict=False))
            faults.append(
                f"iteration {iteration}: {len(played)} rollouts, not its {len(names)} in the "
                f"data order ({misplaced} out of place)"
            )
    return faults
