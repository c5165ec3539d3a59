"""Output comparison and verdicts, as DeepMind's code_contests tester judges."""

import signal

import pytest

from sandbox.judge import Outcome, outputs_match, tokens_match, verdict


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("3\n", "3"),
        ("1 2 3\n", "1\n2\n\n3   "),
        ("YES", "yes"),
        ("Hello World", "hELLO wORLD"),
        ("0.5", "0.500001"),
        ("0.5", "0.49999"),
        ("3", "3.000001"),
        ("1e-6", "0"),
        ("2.5E3", "2500"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("7", "+7"),
        ("-0", "0"),
        ("", "  \n\t "),
    ],
)
def test_outputs_that_match(expected, actual):
    assert outputs_match(expected, actual)


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("3", "4"),
        ("1 2 3", "1 2"),
        ("1 2", "1 2 3"),
        ("0.5", "0.50002"),
        ("3", "3.0001"),
        ("123456789012345678901234567890", "123456789012345678901234567891"),
        ("1" * 5000, "1" * 4999 + "2"),
        ("YES", "YES!"),
        ("nan", "0"),
        ("inf", "1e999999999"),
        ("1.0", "abc"),
        ("x", ""),
    ],
)
def test_outputs_that_do_not_match(expected, actual):
    assert not outputs_match(expected, actual)


def test_integers_compare_exactly_beyond_float_precision():
    # As floats these two are equal; as integers they differ by one.
    assert float("9007199254740993") == float("9007199254740992")
    assert not tokens_match("9007199254740993", "9007199254740992")


def test_huge_integers_beyond_pythons_int_parsing_limit():
    big = "9" * 10_000
    assert tokens_match(big, "0" + big)
    assert not tokens_match(big, big[:-1] + "8")


def test_float_tolerance_is_absolute_1e5():
    assert tokens_match("1000000.0", "1000000.00001")
    assert not tokens_match("1000000.0", "1000000.0000101")


def _outcome(**fields):
    base = dict(
        exit_code=0, signal=None, stdout="", stderr="", cpu_s=0.1, wall_s=0.1, completed=True
    )
    return Outcome(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "expected", "want"),
    [
        ({"stdout": "42\n"}, "42", "passed"),
        ({"stdout": "41\n"}, "42", "wrong_answer"),
        ({"exit_code": 1}, "42", "runtime_error"),
        ({"exit_code": 3, "stdout": "42"}, "42", "runtime_error"),
        ({"exit_code": None, "signal": signal.SIGSEGV}, "42", "runtime_error"),
        ({"exit_code": 1, "out_of_memory": True}, "42", "memory_exceeded"),
        (
            {"exit_code": None, "signal": signal.SIGKILL, "out_of_memory": True},
            "42",
            "memory_exceeded",
        ),  # fmt: skip
        ({"exit_code": 97}, "42", "runtime_error"),
        ({"exit_code": None, "signal": signal.SIGKILL}, "42", "runtime_error"),
        ({"exit_code": None, "signal": signal.SIGXCPU}, "42", "timeout"),
        ({"cpu_s": 1.5, "stdout": "42"}, "42", "timeout"),
        ({"stopped_for": "timeout", "exit_code": None, "signal": 9}, "42", "timeout"),
        ({"stopped_for": "output", "exit_code": None, "signal": 9}, "42", "output_exceeded"),
        ({}, None, "passed"),
        ({"completed": False}, None, "runtime_error"),  # exited before the assertions ran
        ({"completed": False, "stdout": "42"}, "42", "passed"),  # stdio: an exit(0) is fine
        ({"exit_code": 1}, None, "runtime_error"),
    ],
)
def test_verdicts(fields, expected, want):
    assert verdict(_outcome(**fields), expected, time_limit_s=1.0) == want
