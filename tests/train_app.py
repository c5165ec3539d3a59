"""Running the real training app (`python -m launch.train`) from tests, small."""

from __future__ import annotations

import subprocess
import sys


def launch_train(*overrides: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """`python -m launch.train` with `overrides`, run to its end."""
    command = [sys.executable, "-m", "launch.train", *overrides]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def small_run_overrides(model, out) -> list[str]:
    """Two small iterations on `model`, into `out`: lengths cut for CPU."""
    return [
        f"model.path={model}",
        f"run.dir={out}",
        "trainer.iterations=2",
        "dialog.max_model_len=1024",
        "engine.max_model_len=1024",
        "learner.micro_batch_tokens=2048",
    ]


def train_small(model, out, *overrides: str) -> subprocess.CompletedProcess:
    """Two small iterations of the real app on `model`, into `out`; must succeed."""
    done = launch_train(*small_run_overrides(model, out), *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    return done
