"""Prompt templates, chat-template rendering, and code extraction from replies."""

import dataclasses

import pytest

from problems import Problem
from problems.prompts import (
    code_blocks,
    extract_code,
    render_first_turn,
    user_message,
)
from sandbox import TestSet

FENCE = (
    "Your code should be enclosed in triple backticks like so: ```python YOUR CODE HERE ```. "
    "Use the backticks for your code only."
)


def _problem(source, statement="Add two numbers.", **fields):
    tests = TestSet("stdio", ("1 2",), ("3",))
    if source in ("humaneval", "humaneval_plus", "mbpp_plus"):
        tests = TestSet("assertions", ("assert f(1) == 2",))
    return Problem(f"{source}/0", source, statement, tests, tests, **fields)


def test_code_contests_and_toy_template_word_for_word():
    expected = (
        "Provide a Python solution for the following competitive programming question: "
        "Add two numbers.. " + FENCE
    )
    assert user_message(_problem("code_contests")) == expected
    assert user_message(_problem("toy")) == expected


def test_humaneval_template():
    problem = _problem("humaneval_plus", "def f(x):\n    '''Add one.'''\n")
    assert user_message(problem) == (
        "Write a solution to the following problem and make sure that it passes the tests: "
        "def f(x):\n    '''Add one.'''"
    )


def test_mbpp_template_quotes_the_tests_then_asks_for_backticks():
    problem = _problem("mbpp_plus", "Write a function f.", prompt_tests="assert f(1) == 2")
    assert user_message(problem) == (
        "Provide a Python solution for the following problem: Write a function f. "
        "Your code should pass these tests: assert f(1) == 2\n" + FENCE
    )


def test_unknown_source_is_a_clear_error():
    with pytest.raises(ValueError, match="no prompt template for source 'spoj'"):
        user_message(Problem("x", "spoj", "s", TestSet("stdio", (), ()), TestSet("stdio", (), ())))


@pytest.fixture(scope="module")
def chat_tokenizer():
    """A small tokenizer with a chat template of its own, built offline."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models

    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
        unk_token="[UNK]",
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    return tokenizer


def test_first_turn_goes_through_the_chat_template(chat_tokenizer):
    problem = _problem("toy")
    assert render_first_turn(chat_tokenizer, problem) == (
        f"<|user|>\n{user_message(problem)}<|end|>\n<|assistant|>\n"
    )


def test_first_turn_lengths_in_one_batch_are_the_first_turn_ids_lengths():
    from pathlib import Path

    from transformers import AutoTokenizer

    from problems.prompts import first_turn_ids, first_turn_lengths
    from problems.toy import generate_toy

    tokenizer = AutoTokenizer.from_pretrained(Path(__file__).parents[1] / "artifacts" / "tiny")
    problems = generate_toy("valid", 12)
    long = dataclasses.replace(problems[0], statement=problems[0].statement * 40)
    lengths = first_turn_lengths(tokenizer, [*problems, long])
    assert lengths == [len(first_turn_ids(tokenizer, p)) for p in [*problems, long]]
    assert lengths[-1] > 10 * lengths[0]


def test_reply_prefix_is_prefilled_after_the_generation_prompt(chat_tokenizer):
    prefix = "```python\ndef f(x):\n"
    problem = _problem("humaneval_plus", "def f(x):\n", reply_prefix=prefix)
    assert render_first_turn(chat_tokenizer, problem).endswith("<|assistant|>\n" + prefix)
    # The program is extracted from prefix + what the model wrote.
    assert extract_code(prefix + "    return x + 1\n```") == "def f(x):\n    return x + 1\n"


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("Here:\n```python\nprint(1)\n```\nDone.", "print(1)\n"),
        ("```py\nprint(2)\n```", "print(2)\n"),
        ("```\nprint(3)\n```", "print(3)\n"),
        ("```Python3  \nprint(4)\n```", "print(4)\n"),
        # Several blocks: the first Python one; other languages are skipped.
        ("```text\n1 2\n```\n```python\nprint(5)\n```\n```python\nprint(6)\n```", "print(5)\n"),
        # An unclosed fence runs to the end of the reply.
        ("```python\nx = 7\nprint(x)\n", "x = 7\nprint(x)\n"),
        ("Sure!\n```python\nprint(8)", "print(8)"),
    ],
)
def test_extracts_the_code_block(reply, code):
    assert extract_code(reply) == code


@pytest.mark.parametrize(
    "reply",
    [
        "The answer is to add the numbers.",  # prose only
        "print(1)",  # code without a fence
        "```python\n```",  # empty block
        "```python\n   \n```",
        "```python\ndef f(:\n    pass\n```",  # does not parse
        "```python\nfor i in range(3)\n",  # unclosed and cut mid-statement
        "```python\nreturn 1\n```",  # parses, but does not compile
        "```cpp\nint main() {}\n```",  # not Python
        "```python print(1) ```",  # inline: no newline after the opening fence
        "",
    ],
)
def test_no_valid_code(reply):
    assert extract_code(reply) is None


def test_first_python_block_decides_even_if_a_later_one_is_valid():
    reply = "```python\ndef f(:\n```\n```python\nprint(1)\n```"
    assert extract_code(reply) is None
    assert [language for language, _ in code_blocks(reply)] == ["python", "python"]
