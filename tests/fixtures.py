"""Helpers the tests import (`from fixtures import ...`): small data files in the real
formats, written by the tests themselves (no downloads), and small sandbox jobs.

CodeContests: parquet shards of the hub's schema (`problems.code_contests.HUB_SCHEMA`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from problems.code_contests import HUB_SCHEMA
from sandbox import Job, Sandbox, TestSet

ADD_PROGRAM = "a, b = map(int, input().split())\nprint(a + b)\n"
"""A correct Python 3 program for the fixture's problems (print the sum of two integers)."""


def pairs(*tests: tuple[str, str]) -> dict:
    """`{"input": [...], "output": [...]}` from (input, output) pairs."""
    return {"input": [i for i, _ in tests], "output": [o for _, o in tests]}


def code_contests_row(name: str, **fields) -> dict:
    """A well-formed CodeContests row (an A + B problem, 2 s, 256 MB); `fields` override."""
    row = {
        "name": name,
        "description": f"{name}: print the sum of two integers.",
        "public_tests": pairs(("1 2\n", "3\n")),
        "private_tests": pairs(("5 5\n", "10\n")),
        "generated_tests": pairs(("-1 1\n", "0\n"), ("7 8\n", "15\n")),
        "source": 2,
        "difficulty": 7,
        "solutions": {
            "language": [2, 3, 1, 3],
            "solution": [
                "int main() {}",
                ADD_PROGRAM,
                "print a + b",
                "print(sum(map(int, input().split())))\n",
            ],
        },
        "incorrect_solutions": {"language": [3, 4], "solution": ["print(0)\n", "class A {}"]},
        "cf_contest_id": 1548,
        "cf_index": "A",
        "cf_points": 500.0,
        "cf_rating": 800,
        "cf_tags": ["math"],
        "is_description_translated": False,
        "untranslated_description": "",
        "time_limit": {"seconds": 2, "nanos": 0},
        "memory_limit_bytes": 256 * 2**20,
        "input_file": "",
        "output_file": "",
    }
    row.update(fields)
    return row


def write_code_contests_shards(folder: Path, shards: dict[str, list[dict]]) -> Path:
    """Write each `{file name: rows}` as a parquet shard under `folder`; returns `folder`."""
    for file_name, rows in shards.items():
        target = folder / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=HUB_SCHEMA), target)
    return folder


def synthetic_rollouts(count: int, seed: int, vocab_size: int) -> list:
    """Rollouts of 1-3 turns with random token ids, code validity and outcomes: what the
    learner reads, without playing (behaviour log-probs near a uniform policy's)."""
    import math
    import random

    from engines.rollout import Rollout, Turn

    rng = random.Random(seed)
    uniform = -math.log(vocab_size)

    def tokens(low: int, high: int) -> list[int]:
        return [rng.randrange(4, vocab_size) for _ in range(rng.randrange(low, high))]

    rollouts = []
    for index in range(count):
        ids = tokens(6, 30)
        mask, logprobs = [0] * len(ids), [0.0] * len(ids)
        starts, turns = [], []
        for turn in range(rng.randrange(1, 4)):
            if turn:
                feedback = tokens(3, 10)
                ids += feedback
                mask += [0] * len(feedback)
                logprobs += [0.0] * len(feedback)
            starts.append(len(ids))
            reply = tokens(2, 20)
            ids += reply
            mask += [1] * len(reply)
            logprobs += [uniform + rng.uniform(-0.3, 0.3) for _ in reply]
            turns.append(Turn("reply", "print(1)" if rng.random() < 0.8 else None, False))
        rollouts.append(
            Rollout(f"p{index}", ids, mask, logprobs, starts, turns, passed=rng.random() < 0.4)
        )
    return rollouts


SHIPPED_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
"""The tiny model's tokenizer, as `artifacts/tiny` ships it."""


def random_qwen2(folder: Path) -> Path:
    """A randomly initialised tiny Qwen2 in `folder`, with the shipped tiny tokenizer: an
    architecture other than the tiny Llama's, with tied embeddings, grouped-query
    attention (2 query heads per key/value head) and attention biases."""
    import shutil

    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    shipped = Path(__file__).resolve().parents[1] / "artifacts" / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_TOKENIZER_FILES:
        shutil.copy(shipped / name, folder / name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


QUICK_TINY = dict(
    hidden_size=64,
    heads=1,
    intermediate_size=128,
    layers=2,
    train_problems=150,
    steps=8,
    batch_size=4,
    eval_problems=12,
    max_new_tokens=48,
)
"""A tiny model that builds in seconds: loadable and real, though it has learned little."""


def stdio_job(program: str, inputs, outputs=None, **limits) -> Job:
    """A stdin/stdout job; `program` is dedented; outputs default to empty strings."""
    inputs = tuple(inputs)
    outputs = tuple(outputs) if outputs is not None else ("",) * len(inputs)
    limits.setdefault("time_limit_s", 2.0)
    limits.setdefault("memory_mb", 512)
    return Job(textwrap.dedent(program), TestSet("stdio", inputs, outputs), **limits)


def run_one(sandbox: Sandbox, program: str, stdin: str = "", expected: str = "", **limits):
    """The TestResult of `program` on one stdin/stdout test."""
    return sandbox.run(stdio_job(program, [stdin], [expected], **limits)).tests[0]
