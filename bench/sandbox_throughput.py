"""Sandbox throughput: our fork server against a fresh `python` per test.

Both harnesses judge the same jobs (small stdin/stdout programs, 25 tests each, some of
them wrong) with the same number of workers; the figures are a ratio and the per-test
overhead above the programs' own run time, all measured in this run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from sandbox import Job, Sandbox, SandboxConfig, TestSet
from sandbox.judge import outputs_match

TESTS_PER_JOB = 25
PROGRAMS = {
    "sum": ("print(sum(map(int, input().split())))", lambda xs: str(sum(xs))),
    "sort": (
        "print(*sorted(map(int, input().split())))",
        lambda xs: " ".join(map(str, sorted(xs))),
    ),
    "max": ("print(max(map(int, input().split())))", lambda xs: str(max(xs))),
    "count_even": (
        "print(sum(1 for x in map(int, input().split()) if x % 2 == 0))",
        lambda xs: str(sum(1 for x in xs if x % 2 == 0)),
    ),
    # Wrong programs: an off-by-one, and one that crashes on some inputs.
    "max_wrong": ("print(max(map(int, input().split())) + 1)", lambda xs: str(max(xs))),
    "crash": (
        "xs = list(map(int, input().split()))\nprint(100 // (xs[0] % 5))",
        lambda xs: str(100 // (xs[0] % 5)) if xs[0] % 5 else "0",
    ),
}


def workload(jobs: int, seed: int = 0) -> list[Job]:
    rng = random.Random(seed)
    names = sorted(PROGRAMS)
    result = []
    for index in range(jobs):
        program, solve = PROGRAMS[names[index % len(names)]]
        inputs, outputs = [], []
        for _ in range(TESTS_PER_JOB):
            xs = [rng.randint(-1000, 1000) for _ in range(rng.randint(1, 30))]
            inputs.append(" ".join(map(str, xs)) + "\n")
            outputs.append(solve(xs) + "\n")
        result.append(Job(program, TestSet("stdio", tuple(inputs), tuple(outputs)), 2.0, 512))
    return result


def fresh_interpreter_verdicts(job: Job, scratch: str) -> list[str]:
    """The baseline: `python -I solution.py` per test, judged with the same comparison."""
    path = os.path.join(scratch, f"solution-{abs(hash(job.program))}.py")
    with open(path, "w") as f:
        f.write(job.program)
    verdicts = []
    for stdin, expected in zip(job.tests.inputs, job.tests.outputs, strict=True):
        try:
            done = subprocess.run(
                [sys.executable, "-I", path],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=job.time_limit_s * 2 + 1,
            )
        except subprocess.TimeoutExpired:
            verdicts.append("timeout")
            continue
        if done.returncode != 0:
            verdicts.append("runtime_error")
        else:
            verdicts.append("passed" if outputs_match(expected, done.stdout) else "wrong_answer")
    return verdicts


def in_process_seconds(jobs: list[Job]) -> float:
    """The programs' own run time: each test exec-ed in this process, no isolation at all."""
    total = 0.0
    for job in jobs:
        code = compile(job.program, "solution.py", "exec")
        for stdin in job.tests.inputs:
            out = io.StringIO()
            started = time.perf_counter()
            with contextlib.redirect_stdout(out), contextlib.suppress(Exception):
                sys.stdin = io.StringIO(stdin)
                exec(code, {"__name__": "__main__"})
            total += time.perf_counter() - started
    sys.stdin = sys.__stdin__
    return total


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_throughput")
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    jobs = workload(args.jobs)
    tests = len(jobs) * TESTS_PER_JOB

    with Sandbox(SandboxConfig(workers=args.workers)) as sandbox:
        sandbox.run_many(jobs[: args.workers])  # warm-up: servers started, caches hot
        judgements, ours = timed(sandbox.run_many, jobs)
        isolation = "namespaces" if sandbox.isolation["namespaces"] else "NONE (fallback)"
        isolation += f", memory cap: {sandbox.isolation['memory_cap']}"
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(args.workers) as pool:
        baseline, theirs = timed(
            lambda: list(pool.map(lambda job: fresh_interpreter_verdicts(job, scratch), jobs))
        )
    ours_verdicts = [t.verdict for j in judgements for t in j.tests]
    their_verdicts = [v for job in baseline for v in job]
    same = sum(a == b for a, b in zip(ours_verdicts, their_verdicts, strict=True))

    with Sandbox(SandboxConfig(workers=1)) as single:
        single.run(jobs[0])
        _, one_worker = timed(lambda: [single.run(job) for job in jobs])
    own = in_process_seconds(jobs)
    overhead_ms = (one_worker - own) / tests * 1000

    print(
        f"sandbox throughput: {len(jobs)} jobs x {TESTS_PER_JOB} tests = {tests} tests, "
        f"{args.workers} workers, isolation: {isolation}"
    )
    print(f"  fresh `python -I` per test : {theirs:7.2f} s  ({tests / theirs:7.1f} tests/s)")
    print(f"  fork server (sandbox)      : {ours:7.2f} s  ({tests / ours:7.1f} tests/s)")
    print(f"  ratio: {theirs / ours:.1f}x faster (goal >= 10x); identical verdicts: {same}/{tests}")
    print(
        f"  per-test overhead, 1 worker: {overhead_ms:.2f} ms above the programs' own "
        f"{own / tests * 1000:.3f} ms (goal <= 3 ms)"
    )
    verdict_counts = {v: ours_verdicts.count(v) for v in sorted(set(ours_verdicts))}
    print(f"  verdicts: {verdict_counts}")


if __name__ == "__main__":
    main()
