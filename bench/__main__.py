"""`python -m bench`: run every benchmark and print its figures.

Each benchmark runs in a process of its own: vLLM takes torch.distributed's default
group in the process it runs in, where the learner benchmark needs one of its own. What
the libraries log (vLLM, Ray, DeepSpeed) goes to `outputs/bench/<benchmark>.log`; the
terminal shows the figures, and the log's end if a benchmark fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = ("sandbox_throughput", "rollout_throughput", "learner_throughput", "streaming")
LOG_DIR = Path("outputs") / "bench"
FAILURE_TAIL_LINES = 30


def run(name: str) -> int:
    """Run `bench.<name>`: its figures (stdout) on the terminal, its logs in a file."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"{name}.log"
    # vLLM logs to stdout unless told otherwise: its lines go with the other logs.
    env = os.environ | {"VLLM_LOGGING_STREAM": "ext://sys.stderr"}
    with log.open("w") as errors:
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{name}"], env=env, stderr=errors, check=False
        )
    if done.returncode:
        tail = log.read_text().splitlines()[-FAILURE_TAIL_LINES:]
        print(f"bench: {name} failed (exit {done.returncode}); the end of {log}:", file=sys.stderr)
        print("\n".join(tail), file=sys.stderr)
    else:
        print(f"  (logs: {log})", flush=True)
    return done.returncode


def main() -> int:
    failed = [name for name in BENCHMARKS if run(name)]
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
