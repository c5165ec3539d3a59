"""Judging: is a program's output right, and which verdict does a finished test get.

Output comparison follows DeepMind's code_contests tester: both outputs are split on
whitespace into tokens; tokens match when equal ignoring case; otherwise both must be
numbers, integers (of any size) compare exactly, and when either token is a float they
compare as numbers with absolute tolerance 1e-5.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from decimal import Decimal

FLOAT_TOLERANCE = Decimal("1e-5")
"""Absolute tolerance when either token is a float."""

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def tokens_match(expected: str, actual: str) -> bool:
    """Whether one expected token and one actual token match (see module docstring)."""
    if expected.lower() == actual.lower():
        return True
    if not (_NUMBER.fullmatch(expected) and _NUMBER.fullmatch(actual)):
        return False
    if _INTEGER.fullmatch(expected) and _INTEGER.fullmatch(actual):
        return _canonical_integer(expected) == _canonical_integer(actual)
    try:
        return abs(Decimal(expected) - Decimal(actual)) <= FLOAT_TOLERANCE
    except ArithmeticError:  # exponents beyond Decimal's range
        return False


def _canonical_integer(token: str) -> str:
    """An integer token without '+', leading zeros or a negative zero.

    Compared as text, not int(): Python refuses int() on more than 4300 digits.
    """
    negative = token.startswith("-")
    digits = token.lstrip("+-").lstrip("0") or "0"
    return "-" + digits if negative and digits != "0" else digits


def outputs_match(expected: str, actual: str) -> bool:
    """Whether a program's whole stdout matches the expected output, token by token."""
    expected_tokens, actual_tokens = expected.split(), actual.split()
    return len(expected_tokens) == len(actual_tokens) and all(
        tokens_match(e, a) for e, a in zip(expected_tokens, actual_tokens, strict=True)
    )


@dataclass(frozen=True)
class Outcome:
    """How one test's process ended, as the fork server observed it."""

    exit_code: int | None
    """The exit status, or None when a signal ended the process."""
    signal: int | None
    """The signal that ended the process, or None."""
    stdout: str
    stderr: str
    cpu_s: float
    """User + system CPU seconds of the test's process."""
    wall_s: float
    stopped_for: str | None = None
    """Why the fork server stopped the test early: `timeout`, `output`, or None."""
    out_of_memory: bool = False
    """The program ended on a MemoryError or ENOMEM, or the kernel's OOM killer ended it."""
    completed: bool = False
    """The program, then the assertion script if any, ran to their end (no early exit)."""


def verdict(outcome: Outcome, expected_output: str | None, time_limit_s: float) -> str:
    """The verdict for a finished test; `expected_output` is None for assertion tests."""
    if outcome.stopped_for == "output":
        return "output_exceeded"
    if (
        outcome.stopped_for == "timeout"
        or outcome.cpu_s > time_limit_s
        or outcome.signal == signal.SIGXCPU
    ):
        return "timeout"
    if outcome.out_of_memory:
        return "memory_exceeded"
    if outcome.exit_code != 0:
        return "runtime_error"
    if expected_output is None:
        # An assertion test passes when its script ran to the end: a program that exits
        # with status 0 before it (exit(0), os._exit(0)) skipped the assertions.
        return "passed" if outcome.completed else "runtime_error"
    if outputs_match(expected_output, outcome.stdout):
        return "passed"
    return "wrong_answer"
