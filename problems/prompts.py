"""The RLEF prompt templates, rendered through a tokenizer's chat template, and code extraction.

The templates are the paper's, word for word. Rendering goes through
`tokenizer.apply_chat_template`, so any Hugging Face chat model works, and the problem's
`reply_prefix` (HumanEval+: a code fence and the function's signature) is appended
after the generation prompt, pre-filling the start of the model's reply.
"""

from __future__ import annotations

import re

from .feedback import CODE_FENCE_INSTRUCTION
from .records import Problem

CODE_CONTESTS_TEMPLATE = (
    "Provide a Python solution for the following competitive programming question: "
    "{problem}. " + CODE_FENCE_INSTRUCTION
)
HUMANEVAL_TEMPLATE = (
    "Write a solution to the following problem and make sure that it passes the tests: {problem}"
)
MBPP_TEMPLATE = (
    "Provide a Python solution for the following problem: {problem} "
    "Your code should pass these tests: {tests}\n" + CODE_FENCE_INSTRUCTION
)
TEMPLATE_BY_SOURCE = {
    "code_contests": CODE_CONTESTS_TEMPLATE,
    "toy": CODE_CONTESTS_TEMPLATE,
    "humaneval": HUMANEVAL_TEMPLATE,
    "humaneval_plus": HUMANEVAL_TEMPLATE,
    "mbpp_plus": MBPP_TEMPLATE,
}
PYTHON_TAGS = ("python", "python3", "py")
"""Fence languages taken as Python; an untagged fence counts too, other languages do not."""

_OPENING_FENCE = re.compile(r"```[ \t]*([^\n`]*?)[ \t]*\n")


def user_message(problem: Problem) -> str:
    """The first user turn for `problem`, in the paper's template for its source."""
    try:
        template = TEMPLATE_BY_SOURCE[problem.source]
    except KeyError:
        raise ValueError(
            f"no prompt template for source {problem.source!r} "
            f"(known: {', '.join(TEMPLATE_BY_SOURCE)})"
        ) from None
    return template.format(problem=problem.statement.strip(), tests=problem.prompt_tests.strip())


def first_turn_messages(problem: Problem) -> list[dict[str, str]]:
    """The dialog before the model's first reply, as chat messages."""
    return [{"role": "user", "content": user_message(problem)}]


def render_first_turn(tokenizer, problem: Problem) -> str:
    """The text the model continues on turn 1: chat template, generation prompt, reply prefix."""
    text = tokenizer.apply_chat_template(
        first_turn_messages(problem), tokenize=False, add_generation_prompt=True
    )
    return text + problem.reply_prefix


def first_turn_ids(tokenizer, problem: Problem) -> list[int]:
    """`render_first_turn`, tokenized once: the token ids the model continues on turn 1."""
    return list(
        tokenizer(render_first_turn(tokenizer, problem), add_special_tokens=False).input_ids
    )


def first_turn_lengths(tokenizer, problems: list[Problem]) -> list[int]:
    """`len(first_turn_ids(tokenizer, problem))` of each problem, tokenized in one batch."""
    texts = [render_first_turn(tokenizer, problem) for problem in problems]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False).input_ids]


def code_blocks(reply: str) -> list[tuple[str, str]]:
    """Every fenced block in `reply` as (language tag, code), in order.

    A block opened but never closed (a reply cut by the token limit, or a model that
    forgot the closing fence) runs to the end of the reply.
    """
    blocks = []
    position = 0
    while (opening := _OPENING_FENCE.search(reply, position)) is not None:
        closing = reply.find("```", opening.end())
        end = len(reply) if closing == -1 else closing
        blocks.append((opening.group(1).lower(), reply[opening.end() : end]))
        position = len(reply) if closing == -1 else closing + 3
    return blocks


def extract_code(reply: str) -> str | None:
    """The program in a model's reply, or None when it holds no valid code.

    Takes the first Python block (tagged python/python3/py, or untagged); a reply without
    one, or whose block is empty or does not compile, has no valid code.
    """
    for language, code in code_blocks(reply):
        if language in PYTHON_TAGS or language == "":
            if not code.strip():
                return None
            try:
                compile(code, "<reply>", "exec", dont_inherit=True)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                return None
            return code
    return None


_PLACEHOLDER = "\x00reply\x00"


def next_user_turn(tokenizer, message: str, reply_stopped: bool) -> str:
    """The text that follows a model's reply when the dialog goes on with a user `message`.

    Rendered by the tokenizer's own chat template (so any chat model works): whatever the
    template puts after an assistant turn, the user turn, and the next generation prompt.
    When the reply ended with the EOS token (`reply_stopped`), that token is already in
    the dialog and is not repeated. Tokenized once and appended, this keeps the dialog's
    token ids exactly those the engine produced.
    """
    dialog = [{"role": "user", "content": "?"}, {"role": "assistant", "content": _PLACEHOLDER}]
    before = tokenizer.apply_chat_template(dialog, tokenize=False)
    after = tokenizer.apply_chat_template(
        [*dialog, {"role": "user", "content": message}],
        tokenize=False,
        add_generation_prompt=True,
    )
    if not after.startswith(before):
        raise ValueError("the chat template renders earlier turns differently once a turn is added")
    closing = before[before.index(_PLACEHOLDER) + len(_PLACEHOLDER) :]
    if reply_stopped and closing.startswith(tokenizer.eos_token):
        closing = closing[len(tokenizer.eos_token) :]
    return closing + after[len(before) :]
