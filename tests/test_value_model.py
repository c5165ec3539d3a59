"""The value model: initialised from the policy's weights, read at the turns' value positions."""

import torch
from transformers import AutoModelForCausalLM

from engines.rollout import Rollout, Turn
from learner.batch import collate
from learner.value_model import ValueModel


def _batch():
    first = Rollout(
        "a",
        [1, 2, 3, 4, 5, 6],
        [0, 0, 1, 1, 0, 1],
        [0.0] * 6,
        reply_starts=[2, 5],
        turns=[Turn("x", None, False), Turn("y", "p", True)],
        passed=True,
    )
    second = Rollout(
        "b", [7, 8, 9], [0, 1, 1], [0.0] * 3, reply_starts=[1], turns=[Turn("z", "q", False)]
    )
    return collate([first, second], pad_id=0)


def test_starts_from_the_policy_backbone_with_zero_values(quick_tiny_model):
    policy = AutoModelForCausalLM.from_pretrained(quick_tiny_model, dtype=torch.float32)
    value = ValueModel.from_pretrained(quick_tiny_model, torch.float32)
    for name, tensor in policy.get_decoder().state_dict().items():
        assert torch.equal(value.backbone.state_dict()[name], tensor)
    values = value.point_values(_batch())
    assert values.shape == (3,)
    assert torch.equal(values, torch.zeros(3))
    # A copy: training the value model leaves the policy alone.
    assert value.backbone.embed_tokens.weight.data_ptr() != (
        policy.get_decoder().embed_tokens.weight.data_ptr()
    )


def test_values_are_read_at_the_last_prompt_token_of_each_turn(quick_tiny_model):
    value = ValueModel.from_pretrained(quick_tiny_model, torch.float32)
    torch.nn.init.normal_(value.head.weight, generator=torch.Generator().manual_seed(0))
    batch = _batch()
    every = value(**batch.model_inputs())
    assert torch.equal(
        value.point_values(batch), torch.stack([every[0, 1], every[0, 4], every[1, 0]])
    )
    # Causal: a turn's value does not see its own reply (changing the reply keeps it).
    changed = batch.input_ids.clone()
    changed[0, 2:4] = torch.tensor([9, 9])
    again = value(**{**batch.model_inputs(), "input_ids": changed})
    assert torch.allclose(again[0, 1], every[0, 1])


def test_a_step_on_the_value_loss_moves_values_towards_returns(quick_tiny_model):
    from learner.algo import clipped_value_loss

    value = ValueModel.from_pretrained(quick_tiny_model, torch.float32)
    batch = _batch()
    returns = torch.tensor([0.8, 1.0, -1.0])
    optimizer = torch.optim.Adam(value.parameters(), lr=1e-2)
    old = value.point_values(batch).detach()
    before = ((old - returns) ** 2).mean()
    for _ in range(5):
        loss = clipped_value_loss(value.point_values(batch), old, returns, value_clip=10.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = ((value.point_values(batch).detach() - returns) ** 2).mean()
    assert after < 0.5 * before
