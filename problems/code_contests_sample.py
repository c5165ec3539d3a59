"""A small CodeContests set in the hub's exact parquet schema, made here from toy problems.

What the rehearsal (`+experiment=rehearsal`) trains on, through the real reader:
`data=code_contests data.path=data/code_contests_sample`. The shipped shards are what
`python -m problems.code_contests_sample` writes (a test holds them to it).

Each toy problem becomes one row as the hub has them: the public tests as they are, the
private tests split between `private_tests` and `generated_tests`, the reference program
as a Python 3 solution beside a C++ one (language 2: the reader keeps Python 3 only), the
buggy programs as incorrect solutions, the time limit as `{seconds, nanos}` (null on some
rows) and the memory limit in bytes. Some rows open with a long story, as contest
statements do: a few too long for any reply to fit in the rehearsal's 2048-token dialogs
(dropped when the run loads them), a few that fit the first turn but overflow before
the third; and a few have no public tests (dropped by the reader, as the paper does).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .code_contests import HUB_SCHEMA, PYTHON3
from .records import Problem
from .toy import generate_toy

FOLDER = Path(__file__).resolve().parents[1] / "data" / "code_contests_sample"
"""Where the shipped shards are."""

SIZES = {"train": 240, "valid": 40}
"""Rows per split (the split's toy problems, drawn with seed 0)."""

CPP = 2
"""`solutions.language` of C++ programs."""

CODEFORCES = 2
"""`source` of problems from Codeforces (the dataset's class label)."""

_STORY = (
    "Long ago, in a kingdom by the sea, the royal clerk kept a ledger of every grain "
    "that passed the gates.",
    "Each morning the merchants lined up before the tower, and each evening the clerk "
    "added up what they had brought.",
    "The queen, who liked her numbers tidy, asked the court's programmers to help.",
    "Nobody remembers why the river changed its course that spring, but the ledgers "
    "from that year survive.",
    "The old mathematician of the court insisted that every answer be checked twice.",
    "Travellers from the east brought strings of beads, each bead marked with a letter.",
)

DROPPED_STORY_CHARS = 7000
"""A story this long leaves no room for a reply in 2048 tokens (about 1.9 characters a
token with the tiny model's tokenizer)."""

OVERFLOW_STORY_CHARS = 2600
"""A story this long fits the first turn of a 2048-token dialog, not the third."""


def _story(rng: random.Random, chars: int) -> str:
    sentences = []
    while sum(map(len, sentences)) < chars:
        sentences.append(rng.choice(_STORY))
    return " ".join(sentences) + "\n\n"


def _tests(inputs, outputs) -> dict:
    return {"input": list(inputs), "output": list(outputs)}


def row_of(problem: Problem, index: int, rng: random.Random) -> dict:
    """The hub's row for toy `problem`, the `index`-th of its split (which decides the
    long statements, the missing public tests and the null time limits)."""
    story = ""
    if index % 40 == 7:
        story = _story(rng, DROPPED_STORY_CHARS)
    elif index % 20 == 3:
        story = _story(rng, OVERFLOW_STORY_CHARS)
    half = len(problem.private_tests.inputs) // 2
    private, public = problem.private_tests, problem.public_tests
    no_public = index % 40 == 19
    seconds = int(problem.time_limit_s)
    return {
        "name": problem.name,
        "description": story + problem.statement,
        "public_tests": _tests([], []) if no_public else _tests(public.inputs, public.outputs),
        "private_tests": _tests(private.inputs[:half], private.outputs[:half]),
        "generated_tests": _tests(private.inputs[half:], private.outputs[half:]),
        "source": CODEFORCES,
        "difficulty": 7,
        "solutions": {
            "language": [CPP, *[PYTHON3] * len(problem.solutions)],
            "solution": ["int main() { return 0; }\n", *problem.solutions],
        },
        "incorrect_solutions": {
            "language": [PYTHON3] * len(problem.incorrect_solutions),
            "solution": list(problem.incorrect_solutions),
        },
        "cf_contest_id": 1000 + index,
        "cf_index": "A",
        "cf_points": 500.0,
        "cf_rating": 800,
        "cf_tags": ["implementation"],
        "is_description_translated": False,
        "untranslated_description": "",
        "time_limit": None
        if index % 10 == 5
        else {"seconds": seconds, "nanos": int((problem.time_limit_s - seconds) * 1e9)},
        "memory_limit_bytes": problem.memory_mb * 2**20,
        "input_file": "",
        "output_file": "",
    }


def sample_table(split: str) -> pa.Table:
    """The rows of `split` as one table of the hub's schema."""
    rng = random.Random(f"code-contests-sample-{split}")
    problems = generate_toy(split, SIZES[split], seed=0)
    rows = [row_of(problem, index, rng) for index, problem in enumerate(problems)]
    return pa.Table.from_pylist(rows, schema=HUB_SCHEMA)


def shard_name(split: str) -> str:
    """The hub's shard name of a split held in one shard."""
    return f"{split}-00000-of-00001.parquet"


def write_sample(folder: Path = FOLDER) -> list[Path]:
    """Write every split's shard under `folder`; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for split in SIZES:
        path = folder / shard_name(split)
        pq.write_table(sample_table(split), path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_sample(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER):
        print(f"wrote {written}")
