"""`python -m launch.prepare_tiny [overrides]`: the tiny model that `make train` teaches.

Builds, deterministically and offline, a tiny Llama-architecture causal LM in Hugging
Face format, loadable by `transformers` and vLLM:

1. a byte-level BPE tokenizer trained here on toy-contest text, with a chat template;
2. a Llama of a few million parameters, randomly initialised;
3. a short supervised warm start on toy-contest training problems, with replies that
   are sometimes the reference program and sometimes a plausibly buggy one, so that the
   model writes well-formed programs that are often wrong; and some two-turn dialogs
   where, after a buggy reply and its real feedback, it writes another program, chosen
   without regard to the feedback (right as often as a first reply; on a statement that
   leaves a detail unsaid, under a reading drawn at random, not the one the feedback
   shows). It learns to try again, as instruct models do; learning to use the feedback
   is RLEF's job.

Then it measures the single-turn solve rate on toy valid (one sample per problem at the
training temperature, 1.0, judged by the sandbox on all tests) and writes it, with the
model's size, to `warm_start.json` beside the model. The output is cached: a second call
with the same config returns at once; `force=true` rebuilds.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from launch.config import compose_config, run_entry_point
from problems import Problem
from problems.feedback import (
    FEEDBACK_HEADER,
    MEMORY_REASON,
    RETRY_INSTRUCTION,
    TIMEOUT_REASON,
    failed_test_bullet,
    wrong_output_reason,
)
from problems.prompts import extract_code, first_turn_ids, user_message
from problems.toy import ToyInstance, generate_toy, statement_readings, toy_instances
from sandbox import Sandbox, SandboxConfig
from sandbox.zygote import PROGRAM_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent
SPECIAL_TOKENS = ("<|bos|>", "<|end|>", "<|pad|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""Turns as `<|role|>\\ncontent<|end|>\\n`; a reply ends with `<|end|>`, the EOS token."""
SUMMARY_FILE = "warm_start.json"
FEEDBACK_TEXTS = (RETRY_INSTRUCTION, FEEDBACK_HEADER, TIMEOUT_REASON, MEMORY_REASON)
TRACEBACK_START = (
    f'Traceback (most recent call last):\n  File "{PROGRAM_FILE}", line 1, in <module>'
)
"""With `FEEDBACK_TEXTS`, the tokenizer corpus's texts that come from no problem: the
feedback wording, and the start of a traceback of the program as the sandbox names it."""
CONFIG_FILE = "prepare_tiny.json"


@dataclass
class TinyModelConfig:
    out_dir: str = "artifacts/tiny"
    """Where the model goes (relative paths are from the repository root)."""
    force: bool = False
    """Rebuild even if `out_dir` holds a model built with this same config."""
    seed: int = 0
    """Seeds the toy problems, the replies drawn for the warm start, and torch."""
    vocab_size: int = 1024
    """BPE vocabulary size, special tokens included."""
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    """Attention heads; head size = hidden_size / heads (64, which vLLM's CPU kernels support)."""
    intermediate_size: int = 704
    max_positions: int = 2048
    """Longest dialog the model can hold, in tokens (3 turns with feedback fit)."""
    train_problems: int = 2000
    """Toy-contest training problems the warm start draws from."""
    correct_fraction: float = 0.45
    """Share of warm-start replies that are the reference program; the rest are buggy."""
    retry_fraction: float = 0.3
    """Share of training problems that also give a two-turn example: a buggy first reply,
    its real execution feedback on the public tests, and a second attempt, another
    program (the reference with probability `correct_fraction`, under a reading of the
    statement drawn at random where it leaves a detail unsaid), chosen without regard to
    the feedback; only the second reply is trained. Like an instruct model, it writes
    again after feedback; which fix the feedback calls for is left for RLEF to learn."""
    steps: int = 600
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    eval_problems: int = 200
    """Toy valid problems the solve rate is measured on."""
    eval_temperature: float = 1.0
    max_new_tokens: int = 192
    sandbox: SandboxConfig = field(default_factory=lambda: SandboxConfig(workers=2))
    """Judges the model's programs for the solve rate."""

    def output_path(self) -> Path:
        path = Path(self.out_dir).expanduser()
        return path if path.is_absolute() else REPO_ROOT / path

    def recipe(self) -> dict:
        """What decides the model: the fields, and the fixed texts its tokenizer learns
        (the feedback wording); a cached model is reused only if they match."""
        fields = asdict(self)
        for name in ("out_dir", "force", "sandbox"):
            fields.pop(name)
        fields["fixed_texts"] = [*FEEDBACK_TEXTS, TRACEBACK_START]
        return fields


def tokenizer_corpus(problems: list[Problem]) -> list[str]:
    """Texts the tokenizer learns from: prompts, programs (right and wrong), feedback."""
    texts = list(FEEDBACK_TEXTS)
    for problem in problems:
        texts.append(user_message(problem))
        texts.extend(f"```python\n{program}```" for program in problem.solutions)
        texts.extend(f"```python\n{program}```" for program in problem.incorrect_solutions)
        for stdin, expected in zip(
            problem.public_tests.inputs, problem.public_tests.outputs, strict=True
        ):
            # A wrong answer's bullet up to the program's output.
            texts.append(failed_test_bullet(stdin, wrong_output_reason(expected, ""))[:-1])
    texts.append(TRACEBACK_START)
    return texts


def build_tokenizer(corpus: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (any text encodes) with our special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    # One token per digit: a number reads the same in the statement and in the program,
    # so a tiny model can learn to copy it.
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|bos|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|user|>", "<|assistant|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(config: TinyModelConfig, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(llama)


def warm_start_examples(
    tokenizer, problems: list[Problem], correct_fraction: float, rng: random.Random
) -> list[tuple[list[int], int]]:
    """(token ids, prompt length) per problem: prompt, then one reply drawn at random.

    The reply is the reference program with probability `correct_fraction`, else one of
    the problem's buggy programs; it ends with the EOS token.
    """
    examples = []
    for problem in problems:
        if problem.incorrect_solutions and rng.random() >= correct_fraction:
            program = rng.choice(problem.incorrect_solutions)
        else:
            program = problem.solutions[0]
        prompt = first_turn_ids(tokenizer, problem)
        examples.append((prompt + _reply_ids(tokenizer, program), len(prompt)))
    return examples


def retry_examples(
    tokenizer,
    instances: list[ToyInstance],
    correct_fraction: float,
    count: int,
    rng: random.Random,
    sandbox: Sandbox,
) -> list[tuple[list[int], int]]:
    """Up to `count` two-turn examples (token ids, length before the second reply): a
    buggy program, the feedback of its real run on the public tests, and another program,
    drawn without regard to the feedback: under a reading of the statement drawn at
    random (`statement_readings`), its reference with probability `correct_fraction`,
    else one of its buggy programs other than the first. A buggy program that passes
    the public tests ends its dialog there: no example."""
    from problems.feedback import feedback_message
    from problems.prompts import next_user_turn

    candidates = [i for i in instances if i.problem.incorrect_solutions]
    chosen = rng.sample(candidates, min(count, len(candidates)))
    firsts = [rng.choice(i.problem.incorrect_solutions) for i in chosen]
    judgements = sandbox.run_many(
        [i.problem.job(f, i.problem.public_tests) for i, f in zip(chosen, firsts, strict=True)]
    )
    examples = []
    for instance, first, judgement in zip(chosen, firsts, judgements, strict=True):
        if judgement.passed:
            continue
        problem = instance.problem
        reference, bugs = rng.choice(statement_readings(instance))
        others = [program for program in bugs if program != first]
        if not others or rng.random() < correct_fraction:
            second = reference
        else:
            second = rng.choice(others)
        feedback = next_user_turn(
            tokenizer, feedback_message(problem.public_tests, judgement), reply_stopped=True
        )
        context = (
            first_turn_ids(tokenizer, problem)
            + _reply_ids(tokenizer, first)
            + tokenizer(feedback, add_special_tokens=False).input_ids
        )
        examples.append((context + _reply_ids(tokenizer, second), len(context)))
    return examples


def _reply_ids(tokenizer, program: str) -> list[int]:
    """A reply holding `program`, as the model writes it, EOS included."""
    reply = tokenizer(f"```python\n{program}```", add_special_tokens=False).input_ids
    return reply + [tokenizer.eos_token_id]


def train(
    model, examples: list[tuple[list[int], int]], config: TinyModelConfig, pad_id: int, progress
) -> list[float]:
    """Next-token loss on the replies only; AdamW with linear warm-up and cosine decay."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)

    def learning_rate_scale(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        done = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * done))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_scale)
    order = random.Random(config.seed)
    losses = []
    model.train()
    for _ in range(config.steps):
        batch = [examples[order.randrange(len(examples))] for _ in range(config.batch_size)]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100)
        for row, (ids, prompt_length) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            labels[row, prompt_length : len(ids)] = torch.tensor(ids[prompt_length:])
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        progress.update()
        progress.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


def sample_replies(
    model,
    tokenizer,
    problems: list[Problem],
    temperature: float,
    max_new_tokens: int,
    batch_size: int = 50,
) -> list[str]:
    """One sampled reply per problem (the reply prefix included), by the transformers
    engine the rollouts use."""
    from engines.generation import SamplingConfig
    from engines.hf_engine import HFEngine

    engine = HFEngine(model, tokenizer)
    sampling = SamplingConfig(temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens)
    replies = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start : start + batch_size]
        completions = engine.generate([first_turn_ids(tokenizer, p) for p in chunk], sampling)
        for problem, completion in zip(chunk, completions, strict=True):
            text = tokenizer.decode(completion.token_ids, skip_special_tokens=True)
            replies.append(problem.reply_prefix + text)
    return replies


def solve_rate(replies: list[str], problems: list[Problem], sandbox: Sandbox) -> dict:
    """Share of problems whose reply's program passes all tests, and of replies with code."""
    programs = [extract_code(reply) for reply in replies]
    jobs = [
        p.job(code, p.all_tests, stop_on_first_failure=True)
        for p, code in zip(problems, programs, strict=True)
        if code is not None
    ]
    passed = sum(j.passed for j in sandbox.run_many(jobs))
    return {"solve_rate": passed / len(problems), "valid_code_rate": len(jobs) / len(problems)}


def prepare(config: TinyModelConfig) -> dict:
    """Build (or reuse) the tiny model; return its summary (size, warm-start figures)."""
    out = config.output_path()
    cached = out / CONFIG_FILE
    if not config.force and cached.exists() and (out / SUMMARY_FILE).exists():
        if json.loads(cached.read_text()) == config.recipe():
            summary = json.loads((out / SUMMARY_FILE).read_text())
            print(f"prepare_tiny: cached model at {out} (force=true rebuilds)", file=sys.stderr)
            return summary

    import torch
    from tqdm import tqdm

    started = time.monotonic()
    torch.manual_seed(config.seed)
    train_instances = toy_instances("train", config.train_problems, seed=config.seed)
    train_problems = [instance.problem for instance in train_instances]
    valid_problems = generate_toy("valid", config.eval_problems, seed=config.seed)
    print(
        f"prepare_tiny: {len(train_problems)} toy train problems; training the tokenizer",
        file=sys.stderr,
    )
    tokenizer = build_tokenizer(tokenizer_corpus(train_problems), config.vocab_size)
    model = build_model(config, tokenizer)
    parameters = sum(p.numel() for p in model.parameters())
    rng = random.Random(config.seed)
    examples = warm_start_examples(tokenizer, train_problems, config.correct_fraction, rng)
    with Sandbox(config.sandbox) as sandbox:
        examples += retry_examples(
            tokenizer,
            train_instances,
            config.correct_fraction,
            round(config.retry_fraction * len(train_problems)),
            rng,
            sandbox,
        )
    with tqdm(
        total=config.steps,
        desc=f"warm start ({parameters / 1e6:.1f}M parameters)",
        unit="step",
        file=sys.stderr,
        disable=None,
    ) as progress:
        losses = train(model, examples, config, tokenizer.pad_token_id, progress)
    trained_s = time.monotonic() - started
    print(
        f"prepare_tiny: sampling {len(valid_problems)} toy valid problems at "
        f"temperature {config.eval_temperature}",
        file=sys.stderr,
    )
    replies = sample_replies(
        model, tokenizer, valid_problems, config.eval_temperature, config.max_new_tokens
    )
    with Sandbox(config.sandbox) as sandbox:
        rates = solve_rate(replies, valid_problems, sandbox)
    summary = {
        "parameters": parameters,
        "vocab_size": len(tokenizer),
        "warm_start_steps": config.steps,
        "warm_start_examples": len(examples),
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "toy_valid_problems": len(valid_problems),
        "toy_valid_single_turn": rates,
        "eval_temperature": config.eval_temperature,
        "build_seconds": round(time.monotonic() - started, 1),
        "train_seconds": round(trained_s, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    cached.write_text(json.dumps(config.recipe(), indent=2) + "\n")
    return summary


def prepare_tiny(overrides: list[str]) -> str:
    """Compose the config, build (or reuse) the model, and return its summary lines."""
    config = compose_config("prepare_tiny", overrides, TinyModelConfig)
    summary = prepare(config)
    rates = summary["toy_valid_single_turn"]
    return (
        f"tiny model: {config.output_path()}\n"
        f"  parameters: {summary['parameters'] / 1e6:.2f}M, vocabulary {summary['vocab_size']}\n"
        f"  toy valid, single turn, temperature {summary['eval_temperature']}: "
        f"solve rate {100 * rates['solve_rate']:.1f}%, "
        f"replies with valid code {100 * rates['valid_code_rate']:.1f}% "
        f"({summary['toy_valid_problems']} problems)\n"
        f"  built in {summary['build_seconds']} s "
        f"(warm start {summary['warm_start_steps']} steps, loss {summary['final_loss']:.3f})"
    )


def main(argv: list[str] | None = None) -> int:
    return run_entry_point(
        "prepare_tiny", lambda: prepare_tiny(sys.argv[1:] if argv is None else argv)
    )


if __name__ == "__main__":
    sys.exit(main())
