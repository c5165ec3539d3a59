"""The RLEF feedback message, character for character."""

from problems.feedback import feedback_message
from sandbox import Judgement, TestResult, TestSet
from sandbox.trim import trim_middle


def _result(verdict, stdout="", stderr=""):
    return TestResult(verdict, 0.01, stdout, stderr)


def test_one_bullet_per_failing_test_in_the_papers_format():
    tests = TestSet(
        "stdio",
        ("1 2\n", "3 4\n", "5 6\n", "7 8\n", "9 9\n"),
        ("3\n", "7\n", "11\n", "15\n", "18\n"),
    )
    trace = (
        "Traceback (most recent call last):\n"
        '  File "solution.py", line 1, in <module>\n'
        "ValueError: bad\n"
    )
    judgement = Judgement.of(
        [
            _result("passed", "3\n"),
            _result("wrong_answer", "8\n"),
            _result("runtime_error", "", trace),
            _result("timeout"),
            _result("memory_exceeded"),
        ],
        total=5,
    )
    assert feedback_message(tests, judgement) == (
        "Your code failed the following tests:\n"
        "\n"
        "- input '3 4\n' failed: Expected output '7\n' but got '8\n'\n"
        "- input '5 6\n' failed: " + trace.strip() + "\n"
        "- input '7 8\n' failed: Execution took too long.\n"
        "- input '9 9\n' failed: Out of memory.\n"
        "Give it another try. Your code should be enclosed in triple backticks like so: "
        "```python YOUR CODE HERE ```. Use the backticks for your code only."
    )


def test_output_exceeded_quotes_what_was_printed():
    tests = TestSet("stdio", ("1",), ("2",))
    judgement = Judgement.of([_result("output_exceeded", "y" * 5000)], total=1)
    message = feedback_message(tests, judgement, max_chars=100)
    assert "Expected output '2' but got 'yyyy" in message
    assert "[4900 characters cut]" in message


def test_long_fields_are_cut_with_a_visible_marker():
    long_input = "1 " * 2000
    tests = TestSet("stdio", (long_input,), ("x",))
    judgement = Judgement.of([_result("wrong_answer", "y")], total=1)
    message = feedback_message(tests, judgement, max_chars=50)
    assert f"[{len(long_input) - 50} characters cut]" in message
    assert long_input not in message


def test_assertion_tests_quote_the_assertion():
    tests = TestSet("assertions", ("assert f(1) == 2",))
    trace = "AssertionError"
    message = feedback_message(tests, Judgement.of([_result("runtime_error", "", trace)], 1))
    assert "- input 'assert f(1) == 2' failed: AssertionError\n" in message


def test_trim_keeps_both_ends():
    assert trim_middle("abcdefghij", 10) == "abcdefghij"
    assert trim_middle("abcdefghijkl", 4) == "ab...[8 characters cut]...kl"
