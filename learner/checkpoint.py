"""Checkpoint folders that are valid only once complete.

Every rank writes into `<root>/.partial-<iteration>`; when all have finished, one
process writes `trainer_state.json` there, renames the folder to `<root>/iter-<iteration>`
(a rename is atomic) and then points `<root>/latest` at it (write a temporary file,
then `os.replace`). A crash at any moment leaves either the previous checkpoint as the
latest or the new one whole; a `.partial-*` folder is never read.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

STATE_FILE = "trainer_state.json"
LATEST_FILE = "latest"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or incomplete."""


def partial_dir(root: str | Path, iteration: int) -> Path:
    """Where the ranks write the checkpoint of `iteration` (emptied first)."""
    path = Path(root) / f".partial-{iteration:06d}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def final_dir(root: str | Path, iteration: int) -> Path:
    return Path(root) / f"iter-{iteration:06d}"


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def commit(root: str | Path, iteration: int, state: dict, keep: int) -> Path:
    """Make the partial checkpoint of `iteration` the latest, with `state` (JSON: iteration,
    data position, ...); keep only the `keep` newest complete checkpoints (0: all)."""
    root = Path(root)
    partial = root / f".partial-{iteration:06d}"
    _write_atomically(partial / STATE_FILE, json.dumps(state, indent=1))
    final = final_dir(root, iteration)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(partial, final)
    _write_atomically(root / LATEST_FILE, final.name)
    if keep > 0:
        complete = sorted(path for path in root.glob("iter-*") if (path / STATE_FILE).exists())
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest(root: str | Path) -> Path | None:
    """The newest complete checkpoint under `root`, or None if there is none."""
    pointer = Path(root) / LATEST_FILE
    if not pointer.exists():
        return None
    path = Path(root) / pointer.read_text().strip()
    if not (path / STATE_FILE).exists():
        raise CheckpointError(f"{pointer} names {path.name}, which is not a complete checkpoint")
    return path


def read_state(path: str | Path) -> dict:
    """The `trainer_state.json` of a complete checkpoint folder."""
    state_file = Path(path) / STATE_FILE
    if not state_file.exists():
        raise CheckpointError(f"{path} is not a complete checkpoint (no {STATE_FILE})")
    return json.loads(state_file.read_text())
