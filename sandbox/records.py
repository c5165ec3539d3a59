"""Plain records that cross process boundaries: jobs in, judgements out.

Everything here is a dataclass of strings and numbers, so it pickles for Ray and
converts to and from the JSON that the command line and the fork server speak.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

VERDICTS = (
    "passed",
    "wrong_answer",
    "runtime_error",
    "timeout",
    "memory_exceeded",
    "output_exceeded",
)
"""Every per-test verdict the sandbox gives, and no other."""

STDIO = "stdio"
"""Test kind: the program reads the input on stdin; its stdout is judged against the output."""

ASSERTIONS = "assertions"
"""Test kind: each test is a script run after the program; it passes when it exits 0."""

DEFAULT_TIME_LIMIT_S = 10.0
"""CPU seconds per test when a problem sets none (the paper's choice for CodeContests)."""

DEFAULT_MEMORY_MB = 1024
"""Address-space megabytes per test when a problem sets none (the paper's choice)."""

MAX_TIME_LIMIT_S = 3600.0
"""The longest CPU time limit a test may have: an hour (contest limits are seconds)."""

MIN_MEMORY_MB = 16
"""The smallest address-space limit a test may have: no Python interpreter starts in less."""
MAX_MEMORY_MB = 1 << 20
"""The largest address-space limit a test may have: a TiB."""


class JobError(ValueError):
    """A job that cannot be run as given (bad field, wrong type, mismatched tests)."""


def _encodable(text: str) -> bool:
    """Whether `text` can be sent as UTF-8 (JSON's \\ud800 escapes make lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_time_limit(value: object, name: str) -> float:
    """`value` as a CPU time limit in seconds; JobError naming `name` if it is not one."""
    if not _is_number(value) or not 0 < value <= MAX_TIME_LIMIT_S:
        raise JobError(
            f"{name} must be a number of seconds above 0 and at most {MAX_TIME_LIMIT_S:g}, "
            f"got {value!r}"
        )
    return float(value)


def check_memory_mb(value: object, name: str) -> int:
    """`value` as an address-space limit in MB; JobError naming `name` if it is not one."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise JobError(f"{name} must be a whole number of MB, got {value!r}")
    if not MIN_MEMORY_MB <= value <= MAX_MEMORY_MB:
        raise JobError(
            f"{name} must be between {MIN_MEMORY_MB} and {MAX_MEMORY_MB} MB, got {value!r}"
        )
    return value


@dataclass(frozen=True)
class TestSet:
    """The tests of one problem, of one kind.

    For `stdio`, `inputs[i]` is fed on stdin and `outputs[i]` is the expected stdout.
    For `assertions`, `inputs[i]` is a script executed after the program in the same
    namespace, and `outputs` is empty.
    """

    __test__ = False  # not a pytest test class, despite the name

    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in (STDIO, ASSERTIONS):
            raise JobError(f"test kind {self.kind!r} is not one of {STDIO!r}, {ASSERTIONS!r}")
        for name in ("inputs", "outputs"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)):  # a string would be one test per char
                raise JobError(f"test {name} must be a list of strings, got {type(value).__name__}")
            object.__setattr__(self, name, tuple(value))
        if not all(isinstance(text, str) for text in (*self.inputs, *self.outputs)):
            raise JobError("every test input and output must be a string")
        for name, texts in (("input", self.inputs), ("output", self.outputs)):
            for index, text in enumerate(texts):
                if not _encodable(text):
                    raise JobError(f"test {name} {index} is not valid Unicode (a lone surrogate)")
        if self.kind == STDIO and len(self.inputs) != len(self.outputs):
            raise JobError(
                f"stdio tests need one output per input: got {len(self.inputs)} inputs "
                f"and {len(self.outputs)} outputs"
            )
        if self.kind == ASSERTIONS and self.outputs:
            raise JobError("assertion tests carry no expected outputs")

    def __len__(self) -> int:
        return len(self.inputs)

    @classmethod
    def from_json(cls, obj: object) -> TestSet:
        """Read `{"input": [...], "output": [...]}` (CodeContests) or `{"assertions": [...]}`."""
        if not isinstance(obj, dict):
            raise JobError(f"tests must be a JSON object, got {type(obj).__name__}")
        if "assertions" in obj and ("input" in obj or "output" in obj):
            raise JobError('tests have "assertions" and "input"/"output": one kind per job')
        if "assertions" in obj:
            scripts = obj["assertions"]
            if not isinstance(scripts, list):
                raise JobError("tests.assertions must be a list of strings")
            return cls(ASSERTIONS, tuple(scripts))
        if "input" in obj and "output" in obj:
            inputs, outputs = obj["input"], obj["output"]
            if not isinstance(inputs, list) or not isinstance(outputs, list):
                raise JobError("tests.input and tests.output must be lists of strings")
            return cls(STDIO, tuple(inputs), tuple(outputs))
        raise JobError(
            'tests must have "input" and "output" lists (stdin/stdout tests) '
            'or an "assertions" list (assertion scripts)'
        )

    def to_json(self) -> dict:
        if self.kind == ASSERTIONS:
            return {"assertions": list(self.inputs)}
        return {"input": list(self.inputs), "output": list(self.outputs)}


@dataclass(frozen=True)
class Job:
    """One program to judge on one test set, under one problem's limits."""

    program: str
    tests: TestSet
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    """CPU seconds each test may use."""
    memory_mb: int = DEFAULT_MEMORY_MB
    """Address space each test may map, interpreter included."""
    stop_on_first_failure: bool = False
    """Stop at the first test that does not pass (the reward path); the rest are not run."""

    def __post_init__(self) -> None:
        if not isinstance(self.program, str):
            raise JobError(f"program must be a string, got {type(self.program).__name__}")
        if not _encodable(self.program):
            raise JobError("program is not valid Unicode (a lone surrogate)")
        if not isinstance(self.tests, TestSet):
            raise JobError(f"tests must be a TestSet, got {type(self.tests).__name__}")
        if not self.tests.inputs:
            raise JobError("a job needs at least one test (with none it would pass)")
        check_time_limit(self.time_limit_s, "time_limit_s")
        check_memory_mb(self.memory_mb, "memory_mb")
        if not isinstance(self.stop_on_first_failure, bool):
            raise JobError(
                f"stop_on_first_failure must be true or false, got {self.stop_on_first_failure!r}"
            )

    @classmethod
    def from_json(cls, obj: dict) -> Job:
        """Read the job format of `python -m sandbox batch` (the `id` field is the caller's)."""
        if not isinstance(obj, dict):
            raise JobError(f"a job must be a JSON object, got {type(obj).__name__}")
        if "program" not in obj or "tests" not in obj:
            raise JobError('a job needs "program" and "tests"')
        return cls(
            program=obj["program"],
            tests=TestSet.from_json(obj["tests"]),
            time_limit_s=obj.get("time_limit_s", DEFAULT_TIME_LIMIT_S),
            memory_mb=obj.get("memory_mb", DEFAULT_MEMORY_MB),
            stop_on_first_failure=obj.get("stop_on_first_failure", False),
        )

    def to_json(self) -> dict:
        return {
            "program": self.program,
            "tests": self.tests.to_json(),
            "time_limit_s": self.time_limit_s,
            "memory_mb": self.memory_mb,
            "stop_on_first_failure": self.stop_on_first_failure,
        }


@dataclass(frozen=True)
class TestResult:
    """The verdict on one test, with what the program printed (trimmed)."""

    __test__ = False  # not a pytest test class, despite the name

    verdict: str
    time_s: float
    """Wall-clock seconds from the start of the test's process to its end."""
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Judgement:
    """The verdicts on one job's tests, in test order.

    With `stop_on_first_failure`, `tests` ends at the first failing test.
    """

    passed: bool
    tests: tuple[TestResult, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"passed": self.passed, "tests": [asdict(t) for t in self.tests]}

    @classmethod
    def from_json(cls, obj: dict) -> Judgement:
        return cls(passed=obj["passed"], tests=tuple(TestResult(**t) for t in obj["tests"]))

    @classmethod
    def of(cls, tests: list[TestResult], total: int) -> Judgement:
        """Passed only when every one of the `total` tests ran and passed."""
        passed = len(tests) == total and all(t.verdict == "passed" for t in tests)
        return cls(passed=passed, tests=tuple(tests))
