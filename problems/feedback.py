"""The RLEF execution-feedback message: a judgement on the public tests, as a user turn."""

from __future__ import annotations

from sandbox import Judgement, TestSet
from sandbox.trim import trim_middle

FEEDBACK_HEADER = "Your code failed the following tests:"
CODE_FENCE_INSTRUCTION = (
    "Your code should be enclosed in triple backticks like so: "
    "```python YOUR CODE HERE ```. Use the backticks for your code only."
)
"""How every RLEF prompt and feedback turn asks for the code."""
RETRY_INSTRUCTION = "Give it another try. " + CODE_FENCE_INSTRUCTION
NO_CODE_FEEDBACK = "Your reply contains no valid Python code.\n" + RETRY_INSTRUCTION
"""The feedback turn after a reply without a (compilable) code block: nothing to run."""
MAX_FIELD_CHARS = 1000
"""Longest input, output or stack trace quoted in one bullet; longer ones are cut, marked."""
TIMEOUT_REASON = "Execution took too long."
MEMORY_REASON = "Out of memory."


def failure_reason(verdict: str, expected: str, actual: str, stderr: str, max_chars: int) -> str:
    """What one failing test's bullet says after "failed: "."""
    if verdict == "timeout":
        return TIMEOUT_REASON
    if verdict == "memory_exceeded":
        return MEMORY_REASON
    if verdict == "runtime_error":
        return trim_middle(stderr.strip(), max_chars)
    # wrong_answer and output_exceeded: what was printed is what was wrong.
    return wrong_output_reason(trim_middle(expected, max_chars), trim_middle(actual, max_chars))


def wrong_output_reason(expected: str, actual: str) -> str:
    return f"Expected output '{expected}' but got '{actual}'"


def failed_test_bullet(test_input: str, reason: str) -> str:
    """One failing test's line in the feedback turn."""
    return f"- input '{test_input}' failed: {reason}"


def feedback_message(tests: TestSet, judgement: Judgement, max_chars: int = MAX_FIELD_CHARS) -> str:
    """The feedback turn for a judgement of `tests` (run without stopping at the first failure).

    One bullet per failing test, in test order, in the paper's format. Expected outputs
    are quoted for stdin/stdout tests; assertion tests quote the assertion as the input.
    """
    bullets = []
    for index, result in enumerate(judgement.tests):
        if result.verdict == "passed":
            continue
        expected = tests.outputs[index] if index < len(tests.outputs) else ""
        reason = failure_reason(result.verdict, expected, result.stdout, result.stderr, max_chars)
        bullets.append(failed_test_bullet(trim_middle(tests.inputs[index], max_chars), reason))
    return "\n".join([FEEDBACK_HEADER, "", *bullets, RETRY_INSTRUCTION])
