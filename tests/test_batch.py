"""Rollouts to a training batch: index tensors checked by hand."""

import torch

from engines.rollout import Rollout, Turn
from learner.batch import collate, token_logprobs


def _rollouts():
    # Prompt [1, 2], reply [3, 4] (turn 0, no code), feedback [5], reply [6] (turn 1).
    first = Rollout(
        "a",
        [1, 2, 3, 4, 5, 6],
        [0, 0, 1, 1, 0, 1],
        [0, 0, -0.1, -0.2, 0, -0.3],
        reply_starts=[2, 5],
        turns=[Turn("x", None, False), Turn("y", "p", True)],
        passed=True,
    )
    # Prompt [7], reply [8, 9, 10] (turn 0): one turn, failed.
    second = Rollout(
        "b",
        [7, 8, 9, 10],
        [0, 1, 1, 1],
        [0, -0.4, -0.5, -0.6],
        reply_starts=[1],
        turns=[Turn("z", "q", False)],
        passed=False,
    )
    return [first, second]


def test_collate_by_hand():
    batch = collate(_rollouts(), pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 0, 0]]
    # Positions count within each rollout; the padding counts on its own.
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 0, 1]]
    assert batch.real_tokens == 10
    assert batch.token_rows.tolist() == [0, 0, 0, 1, 1, 1]
    assert batch.token_positions.tolist() == [2, 3, 5, 1, 2, 3]
    assert torch.allclose(
        batch.behaviour_logprobs, torch.tensor([-0.1, -0.2, -0.3, -0.4, -0.5, -0.6])
    )
    assert batch.turn_of_token.tolist() == [0, 0, 1, 2, 2, 2]
    assert batch.value_rows.tolist() == [0, 0, 1]
    assert batch.value_positions.tolist() == [1, 4, 0]  # the token before each reply
    assert batch.episode_of_turn.tolist() == [0, 0, 1]
    assert batch.valid_code.tolist() == [False, True, True]
    assert batch.last_turn.tolist() == [False, True, True]
    assert batch.episode_passed.tolist() == [True, True, False]
    assert batch.num_turns == 3


def test_packed_rollouts_share_a_row_and_keep_their_own_positions():
    # Rollout "a" at positions 0-5 of row 0, "b" after it at 6-9.
    batch = collate(_rollouts(), pad_id=0, placement=[(0, 0), (0, 6)])
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 0, 1, 2, 3]]
    assert batch.token_rows.tolist() == [0] * 6
    assert batch.token_positions.tolist() == [2, 3, 5, 7, 8, 9]
    assert batch.value_positions.tolist() == [1, 4, 6]
    assert batch.episode_of_turn.tolist() == [0, 0, 1]
    # Placed in another order, tokens and turns still come in rollout order.
    swapped = collate(_rollouts(), pad_id=0, placement=[(0, 4), (0, 0)])
    assert swapped.input_ids.tolist() == [[7, 8, 9, 10, 1, 2, 3, 4, 5, 6]]
    assert swapped.token_positions.tolist() == [6, 7, 9, 1, 2, 3]
    assert swapped.turn_of_token.tolist() == [0, 0, 1, 2, 2, 2]


def test_token_logprobs_read_the_logits_one_position_earlier():
    batch = collate(_rollouts(), pad_id=0)
    logits = torch.randn(2, 6, 11, generator=torch.Generator().manual_seed(0))
    got = token_logprobs(logits, batch)
    expected = [
        torch.log_softmax(logits[r, p - 1], -1)[batch.input_ids[r, p]].item()
        for r, p in zip(batch.token_rows.tolist(), batch.token_positions.tolist(), strict=True)
    ]
    assert torch.allclose(got, torch.tensor(expected), rtol=1e-6)


def test_the_learner_scores_vllm_rollouts_as_vllm_sampled_them(quick_tiny_model, sandbox):
    """Token in / token out, end to end: the batch's tokens, scored by a forward pass of
    the same weights, give back the engine's behaviour log-probs (temperature 1)."""
    import pytest

    pytest.importorskip("vllm")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from actors.dialog import DialogConfig, play_episodes
    from actors.seeds import EpisodeSeeds
    from engines.backend import make_engine
    from engines.generation import EngineConfig, ModelConfig, SamplingConfig
    from problems.toy import generate_toy

    tokenizer = AutoTokenizer.from_pretrained(quick_tiny_model)
    engine = make_engine(EngineConfig(), ModelConfig(path=str(quick_tiny_model)))
    dialog = DialogConfig(sampling=SamplingConfig(temperature=1.0, max_new_tokens=24))
    rollouts = play_episodes(
        generate_toy("valid", 4),
        engine,
        sandbox.run_many,
        tokenizer,
        dialog,
        EpisodeSeeds(5, "train", 1),
    )
    assert any(len(r.turns) > 1 for r in rollouts)  # feedback turns are in the batch too
    model = AutoModelForCausalLM.from_pretrained(quick_tiny_model, dtype=torch.float32)
    # One rollout per row, and all four packed into two rows: a rollout never sees
    # another's tokens.
    first, second = (len(r.token_ids) for r in rollouts[:2])
    packed = [(0, 0), (1, 0), (0, first), (1, second)]
    for placement in (None, packed):
        batch = collate(rollouts, pad_id=tokenizer.pad_token_id, placement=placement)
        with torch.no_grad():
            logits = model(**batch.model_inputs()).logits
        got = token_logprobs(logits, batch)
        assert torch.allclose(got, batch.behaviour_logprobs, atol=1e-4, rtol=0), (
            (got - batch.behaviour_logprobs).abs().max()
        )
