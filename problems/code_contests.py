"""CodeContests (`deepmind/code_contests`) as a lazy stream of Problems.

The dataset is 7.6 GB of parquet shards (`data/train-00000-of-00039-<hash>.parquet`, ...;
train 13,328 / valid 117 / test 165 problems), so it is always streamed through
`datasets`, row by row, from the hub or from a local folder of the shards.

A row becomes a Problem with public tests = `public_tests` and private tests =
`private_tests` + `generated_tests` (all stdin/stdout), the problem's own limits (10 s and
1024 MB where it sets none) and its Python 3 solutions. Problems without public tests or
without private + generated tests are dropped, as the paper does (669 of the 13,328
training problems), and so is a row that cannot be parsed; `CodeContestsStream.stats`
counts them, with the reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from sandbox import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIME_LIMIT_S,
    MAX_MEMORY_MB,
    MAX_TIME_LIMIT_S,
    MIN_MEMORY_MB,
    STDIO,
    TestSet,
)

from .config import DataError
from .records import Problem

HUB_ID = "deepmind/code_contests"
"""The dataset's id on the Hugging Face hub."""

_TESTS = pa.struct([("input", pa.list_(pa.string())), ("output", pa.list_(pa.string()))])
_SOLUTIONS = pa.struct([("language", pa.list_(pa.int64())), ("solution", pa.list_(pa.string()))])

HUB_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("description", pa.string()),
        ("public_tests", _TESTS),
        ("private_tests", _TESTS),
        ("generated_tests", _TESTS),
        ("source", pa.int64()),
        ("difficulty", pa.int64()),
        ("solutions", _SOLUTIONS),
        ("incorrect_solutions", _SOLUTIONS),
        ("cf_contest_id", pa.int64()),
        ("cf_index", pa.string()),
        ("cf_points", pa.float32()),
        ("cf_rating", pa.int32()),
        ("cf_tags", pa.list_(pa.string())),
        ("is_description_translated", pa.bool_()),
        ("untranslated_description", pa.string()),
        ("time_limit", pa.struct([("seconds", pa.int64()), ("nanos", pa.int64())])),
        ("memory_limit_bytes", pa.int64()),
        ("input_file", pa.string()),
        ("output_file", pa.string()),
    ]
)
"""The hub's columns, in the order and with the nested types of its shards (tests and
solutions are structs of lists; `source`, `difficulty` and `language` are class-label
integers; `time_limit` is a nullable struct)."""

SPLITS = ("train", "valid", "test")
"""The dataset's splits, named as its shards are."""

SOURCE = "code_contests"
"""`Problem.source` of every problem read here."""

PYTHON3 = 3
"""`solutions.language` of Python 3 programs (0 unknown, 1 Python 2, 2 C++, 4 Java)."""

NO_PUBLIC_TESTS = "no public tests"
"""Drop reason: nothing to give execution feedback on."""

NO_PRIVATE_TESTS = "no private or generated tests"
"""Drop reason: nothing to decide the final verdict on."""

_HELP = f"point data.path at a folder of CodeContests parquet shards ({HUB_ID}) or use data=toy"

log = logging.getLogger(__name__)


class CodeContestsError(DataError):
    """CodeContests cannot be read as asked; the message says what to change."""


class MalformedRowError(ValueError):
    """A row that does not have the CodeContests schema; the message names the field."""


@dataclass
class LoadStats:
    """What one pass over a split read, kept and dropped."""

    read: int = 0
    """Rows read from the shards."""
    kept: int = 0
    """Problems yielded."""
    dropped: Counter = field(default_factory=Counter)
    """Rows not yielded, by reason (`no public tests`, `malformed: ...`, ...)."""

    @property
    def dropped_total(self) -> int:
        """Rows dropped, whatever the reason."""
        return sum(self.dropped.values())

    def summary(self) -> str:
        """One line for logs: `read 13328, kept 12659, dropped 669 (no public tests: 3, ...)`."""
        line = f"read {self.read}, kept {self.kept}, dropped {self.dropped_total}"
        if self.dropped:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.dropped.items()))
            line += f" ({reasons})"
        return line


class CodeContestsStream:
    """The problems of one split, read lazily, shard after shard.

    Iterable more than once (each pass streams the shards again); `stats` counts the
    current pass while it runs and the last one after it ends.
    """

    def __init__(self, rows: Iterable[dict], split: str, limit: int | None = None) -> None:
        if limit is not None and limit < 0:
            raise CodeContestsError(f"limit must be None or at least 0, got {limit}")
        self.rows = rows
        """The rows as `datasets` streams them (an `IterableDataset`)."""
        self.split = split
        """`train`, `valid` or `test`."""
        self.limit = limit
        """Stop after this many problems (None: the whole split)."""
        self.stats = LoadStats()
        """Counts of the current or last pass."""

    def __iter__(self) -> Iterator[Problem]:
        self.stats = LoadStats()
        if self.limit == 0:
            return
        for row in self.rows:
            self.stats.read += 1
            try:
                problem = problem_from_row(row)
            except MalformedRowError as error:
                name = row.get("name") if isinstance(row, dict) else None
                log.warning("CodeContests %s: skipping row %r: %s", self.split, name, error)
                self.stats.dropped[f"malformed: {error}"] += 1
                continue
            reason = drop_reason(problem)
            if reason is not None:
                self.stats.dropped[reason] += 1
                continue
            self.stats.kept += 1
            yield problem
            if self.stats.kept == self.limit:
                return


def load_code_contests(
    split: str, path: str | None = None, limit: int | None = None
) -> CodeContestsStream:
    """Stream one split of CodeContests: from the hub when `path` is None, else from the
    `<split>-*.parquet` shards anywhere under the folder `path`; at most `limit` problems."""
    if split not in SPLITS:
        raise CodeContestsError(
            f"CodeContests has no split {split!r}; use one of {', '.join(SPLITS)}"
        )
    import datasets

    if path is None:
        try:
            rows = datasets.load_dataset(HUB_ID, split=split, streaming=True)
        except OSError as error:
            raise CodeContestsError(
                f"cannot open {HUB_ID} on the Hugging Face hub ({error}); download its "
                f"parquet shards and {_HELP}"
            ) from error
        return CodeContestsStream(rows, split, limit)
    files = [str(shard) for shard in shards(path, split)]
    rows = datasets.load_dataset("parquet", data_files={split: files}, split=split, streaming=True)
    return CodeContestsStream(rows, split, limit)


def shards(path: str, split: str) -> list[Path]:
    """The `<split>-*.parquet` files anywhere under the folder `path`, in name order."""
    folder = Path(path)
    if not folder.exists():
        raise CodeContestsError(f"data.path {path!r} does not exist; {_HELP}")
    if not folder.is_dir():
        raise CodeContestsError(f"data.path {path!r} is not a folder; {_HELP}")
    found = sorted(folder.glob(f"**/{split}-*.parquet"))
    if not found:
        raise CodeContestsError(f"data.path {path!r} has no {split}-*.parquet shard; {_HELP}")
    return found


def problem_from_row(row: dict) -> Problem:
    """The Problem of one CodeContests row (any problem, even one `drop_reason` rejects)."""
    if not isinstance(row, dict):
        raise MalformedRowError(f"a row must be a dict, got {type(row).__name__}")
    public_inputs, public_outputs = _tests(row, "public_tests")
    private_inputs, private_outputs = _tests(row, "private_tests")
    generated_inputs, generated_outputs = _tests(row, "generated_tests")
    return Problem(
        name=_string(row, "name"),
        source=SOURCE,
        statement=_string(row, "description"),
        public_tests=TestSet(STDIO, public_inputs, public_outputs),
        private_tests=TestSet(
            STDIO, private_inputs + generated_inputs, private_outputs + generated_outputs
        ),
        time_limit_s=time_limit_s(row.get("time_limit")),
        memory_mb=memory_mb(row.get("memory_limit_bytes")),
        solutions=_python3(row, "solutions"),
        incorrect_solutions=_python3(row, "incorrect_solutions"),
    )


def drop_reason(problem: Problem) -> str | None:
    """Why the paper would not train or evaluate on `problem`, or None to keep it."""
    if not problem.public_tests:
        return NO_PUBLIC_TESTS
    if not problem.private_tests:
        return NO_PRIVATE_TESTS
    return None


def time_limit_s(value: object) -> float:
    """CPU seconds from `time_limit` (`{"seconds", "nanos"}`); 10 s when null or zero."""
    if value is None:
        return DEFAULT_TIME_LIMIT_S
    if not isinstance(value, dict):
        raise MalformedRowError(f"time_limit is a {type(value).__name__}, not {{seconds, nanos}}")
    seconds, nanos = value.get("seconds") or 0, value.get("nanos") or 0
    if not isinstance(seconds, int) or not isinstance(nanos, int) or seconds < 0 or nanos < 0:
        raise MalformedRowError(f"time_limit {value!r} is not non-negative integers")
    total = seconds + nanos / 1e9
    if total > MAX_TIME_LIMIT_S:
        raise MalformedRowError(f"time_limit {value!r} is over the sandbox's limit")
    return total if total > 0 else DEFAULT_TIME_LIMIT_S


def memory_mb(value: object) -> int:
    """Megabytes from `memory_limit_bytes`; 1024 MB when null or zero."""
    if value is None or value == 0:
        return DEFAULT_MEMORY_MB
    if not isinstance(value, int) or value < 0:
        raise MalformedRowError(f"memory_limit_bytes {value!r} is not a non-negative integer")
    if value // 2**20 > MAX_MEMORY_MB:
        raise MalformedRowError(f"memory_limit_bytes {value!r} is over the sandbox's limit")
    # No Python interpreter starts in less than the sandbox's smallest: raised to it.
    return max(value // 2**20, MIN_MEMORY_MB)


def _string(row: dict, name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise MalformedRowError(f"{name} is a {type(value).__name__}, not a string")
    return value


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _tests(row: dict, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Inputs and outputs of `{"input": [...], "output": [...]}`."""
    value = row.get(name)
    if not isinstance(value, dict):
        raise MalformedRowError(f"{name} is a {type(value).__name__}, not {{input, output}}")
    inputs, outputs = value.get("input"), value.get("output")
    if not _strings(inputs) or not _strings(outputs):
        raise MalformedRowError(f"{name}.input and {name}.output are not lists of strings")
    if len(inputs) != len(outputs):
        raise MalformedRowError(f"{name} has {len(inputs)} inputs but {len(outputs)} outputs")
    return tuple(inputs), tuple(outputs)


def _python3(row: dict, name: str) -> tuple[str, ...]:
    """The Python 3 programs of `{"language": [...], "solution": [...]}`."""
    value = row.get(name)
    if not isinstance(value, dict):
        raise MalformedRowError(f"{name} is a {type(value).__name__}, not {{language, solution}}")
    languages, programs = value.get("language"), value.get("solution")
    if not isinstance(languages, list) or not _strings(programs):
        raise MalformedRowError(f"{name}.language and {name}.solution are not lists")
    if len(languages) != len(programs):
        raise MalformedRowError(
            f"{name} has {len(languages)} languages but {len(programs)} programs"
        )
    return tuple(
        program
        for language, program in zip(languages, programs, strict=True)
        if language == PYTHON3
    )
