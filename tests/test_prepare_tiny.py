"""The tiny model: built offline and deterministically, cached, loadable, warm-started right."""

import json
import random

import pytest

transformers = pytest.importorskip("transformers")

from fixtures import QUICK_TINY as QUICK  # noqa: E402

from launch.config import compose_config  # noqa: E402
from launch.prepare_tiny import (  # noqa: E402
    CONFIG_FILE,
    SUMMARY_FILE,
    TinyModelConfig,
    build_tokenizer,
    prepare,
    tokenizer_corpus,
    warm_start_examples,
)
from problems.toy import generate_toy  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    config = TinyModelConfig(out_dir=str(out), **QUICK)
    return config, prepare(config)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(tokenizer_corpus(generate_toy("train", 100)), vocab_size=512)


def test_output_is_a_hugging_face_model_with_a_chat_template(built):
    config, summary = built
    out = config.output_path()
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert model.config.architectures == ["LlamaForCausalLM"]
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|bos|><|user|>\nhi<|end|>\n<|assistant|>\n"
    assert tokenizer.eos_token == "<|end|>"
    rates = summary["toy_valid_single_turn"]
    assert 0 <= rates["solve_rate"] <= rates["valid_code_rate"] <= 1
    assert json.loads((out / SUMMARY_FILE).read_text()) == summary


def test_a_second_call_returns_the_cached_model_without_rebuilding(built):
    config, summary = built
    weights = config.output_path() / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert prepare(config) == summary
    assert weights.stat().st_mtime_ns == before
    changed = TinyModelConfig(out_dir=config.out_dir, **{**QUICK, "steps": 9})
    assert json.loads((config.output_path() / CONFIG_FILE).read_text()) != changed.recipe()


def test_the_build_is_deterministic(built, tmp_path):
    config, _ = built
    again = TinyModelConfig(out_dir=str(tmp_path), **QUICK)
    prepare(again)
    first = (config.output_path() / "model.safetensors").read_bytes()
    assert (tmp_path / "model.safetensors").read_bytes() == first
    assert (tmp_path / "tokenizer.json").read_text() == (
        config.output_path() / "tokenizer.json"
    ).read_text()


def test_digits_are_single_tokens_so_numbers_can_be_copied(tokenizer):
    pieces = tokenizer.tokenize("x > 137")
    assert pieces[-3:] == ["1", "3", "7"]


def test_warm_start_replies_are_single_turn_and_mix_right_and_buggy_programs(tokenizer):
    problems = generate_toy("train", 300)
    examples = warm_start_examples(tokenizer, problems, 0.35, random.Random(0))
    correct = 0
    for problem, (ids, prompt_length) in zip(problems, examples, strict=True):
        text = tokenizer.decode(ids[prompt_length:])
        assert ids[-1] == tokenizer.eos_token_id
        assert text.startswith("```python\n") and text.endswith("```<|end|>")
        program = text[len("```python\n") : -len("```<|end|>")]
        assert program in problem.solutions + problem.incorrect_solutions
        correct += program in problem.solutions
        prompt = tokenizer.decode(ids[:prompt_length])
        assert prompt.count("<|user|>") == 1 and "<|assistant|>" in prompt  # one turn only
    assert 0.25 < correct / len(problems) < 0.45


def test_the_shipped_model_is_the_one_the_default_recipe_builds():
    """`make train` reuses the repository's artifacts/tiny only if it was built with the
    default recipe; and a change to the toy problems or the prompts, which changes what
    the build trains on, changes the tokenizer too: then this fails until the model is
    rebuilt (`python -m launch.prepare_tiny force=true`) and committed."""
    config = compose_config("prepare_tiny", [], TinyModelConfig)
    out = config.output_path()
    assert json.loads((out / CONFIG_FILE).read_text()) == config.recipe()
    problems = generate_toy("train", config.train_problems, seed=config.seed)
    corpus = tokenizer_corpus(problems)
    rebuilt = build_tokenizer(corpus, config.vocab_size)
    shipped = transformers.AutoTokenizer.from_pretrained(out)
    assert shipped.get_vocab() == rebuilt.get_vocab()
    for text in corpus[:: len(corpus) // 50]:
        assert shipped(text).input_ids == rebuilt(text).input_ids
    summary = json.loads((out / SUMMARY_FILE).read_text())
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())
