"""Engine backends: token-in/token-out generation, behaviour log-probs, weight updates.

Both backends run for real on a quickly built tiny model; their log-probs are checked
against a plain `transformers` forward pass of the same weights (float32, 1e-4).
"""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from engines.backend import make_engine
from engines.generation import EngineConfig, ModelConfig, SamplingConfig
from engines.weights import serialize_weights
from problems.prompts import first_turn_ids
from problems.toy import generate_toy

TOLERANCE = 1e-4


def reference_logprobs(model, sequence, start, temperature=1.0):
    """log-softmax(logits / temperature) of sequence[i] for i >= start, by a forward pass."""
    with torch.no_grad():
        logits = model(torch.tensor([sequence])).logits[0, start - 1 : -1] / temperature
    chosen = torch.tensor(sequence[start:])[:, None]
    return torch.log_softmax(logits, -1).gather(1, chosen)[:, 0]


@pytest.fixture(scope="module", params=["vllm", "hf"])
def engine(request, quick_tiny_model):
    if request.param == "vllm":
        pytest.importorskip("vllm")
    return make_engine(EngineConfig(backend=request.param), ModelConfig(path=str(quick_tiny_model)))


@pytest.fixture(scope="module")
def prompts(quick_tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(quick_tiny_model)
    return [first_turn_ids(tokenizer, problem) for problem in generate_toy("valid", 3)]


@pytest.fixture
def model(quick_tiny_model):
    return AutoModelForCausalLM.from_pretrained(quick_tiny_model, dtype=torch.float32)


def test_behaviour_logprobs_are_those_of_the_tempered_distribution(engine, prompts, model):
    sampling = SamplingConfig(temperature=0.7, max_new_tokens=24)
    completions = engine.generate(prompts, sampling, seeds=[1, 2, 3])
    assert len(completions) == len(prompts)
    for prompt, completion in zip(prompts, completions, strict=True):
        assert 0 < len(completion.token_ids) <= 24
        assert len(completion.logprobs) == len(completion.token_ids)
        assert completion.finish_reason in ("stop", "length")
        assert (completion.finish_reason == "stop") == (
            completion.token_ids[-1] == engine.eos_token_id
        )
        assert completion.weight_version == 0
        expected = reference_logprobs(
            model, prompt + list(completion.token_ids), len(prompt), temperature=0.7
        )
        got = torch.tensor(completion.logprobs)
        assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0), (got - expected).abs().max()


def test_the_same_seeds_sample_the_same_replies(engine, prompts):
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=16)
    first = engine.generate(prompts, sampling, seeds=[5, 6, 7])
    again = engine.generate(prompts, sampling, seeds=[5, 6, 7])
    assert [c.token_ids for c in first] == [c.token_ids for c in again]


def test_a_weight_update_makes_the_engine_follow_the_new_weights(engine, prompts, model):
    sequence = prompts[0] + prompts[1][1:]
    before = torch.tensor(engine.sequence_logprobs(sequence))
    assert torch.allclose(before, reference_logprobs(model, sequence, 1), atol=TOLERANCE, rtol=0)
    generator = torch.Generator().manual_seed(0)
    updated = {
        name: tensor + 0.05 * torch.randn(tensor.shape, generator=generator)
        for name, tensor in model.state_dict().items()
    }
    model.load_state_dict(updated)
    engine.update_weights(serialize_weights(updated), version=3)
    after = torch.tensor(engine.sequence_logprobs(sequence))
    expected = reference_logprobs(model, sequence, 1)
    assert torch.allclose(after, expected, atol=TOLERANCE, rtol=0), (after - expected).abs().max()
    assert (after - before).abs().max() > 0.1  # the update did change the engine
    assert engine.weight_version == 3
    completion = engine.generate(prompts[:1], SamplingConfig(max_new_tokens=4), seeds=[0])[0]
    assert completion.weight_version == 3


def test_an_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="engine.backend 'tgi' is not one of vllm, hf"):
        make_engine(EngineConfig(backend="tgi"), ModelConfig())


@pytest.mark.parametrize(
    "backend", ["engines.vllm_engine.VLLMEngine", "engines.hf_engine.HFEngine"]
)
def test_both_backends_implement_the_engine_protocol(backend):
    """Every method of `Engine`, with the same parameters, on each backend class."""
    import importlib
    import inspect

    from engines.backend import Engine

    module, name = backend.rsplit(".", 1)
    engine_class = getattr(importlib.import_module(module), name)
    methods = [
        name
        for name, value in vars(Engine).items()
        if inspect.isfunction(value) and not name.startswith("_")
    ]
    assert methods and "generate" in methods
    for method in methods:
        ours = inspect.signature(getattr(engine_class, method))
        assert list(ours.parameters) == list(inspect.signature(getattr(Engine, method)).parameters)
    assert "weight_version" in Engine.__annotations__
