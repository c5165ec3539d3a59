"""Rollouts to tensors: the padded batch the learner runs, with the index tensors that
`learner.algo` reads (see its notation: N trained tokens, S turns).

Rollouts are packed: a row of `input_ids` holds one or more rollouts end to end, then
padding. `position_ids` count from 0 again at each rollout (and at the padding), and the
models are called without an attention mask, from which transformers builds a causal
mask that keeps each rollout to itself. A trained token at position p of a row is
predicted by the logits at p - 1 (never across rollouts: a rollout's first token is
prompt); the value of turn t is read at the last prompt token before its reply.

Values are read at the batch's value points (P of them): one per turn (the paper's
turn-level value, P = S), or one per trained token at the token before it (the
token-level ablation, P = N). `collate` places them once; the learner then reads
`value_rows`/`value_positions`, `point_of_token` and `turn_of_point` whatever the level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from engines.rollout import Rollout, RolloutSummary

from . import algo

VALUE_LEVELS = ("turn", "token")


@dataclass
class TrainingBatch:
    input_ids: Tensor
    """[B, L] token ids: rollouts packed end to end, then padding."""
    position_ids: Tensor
    """[B, L] each token's position within its rollout (padding counts from 0 too)."""
    real_tokens: int
    """Tokens that are not padding."""
    token_rows: Tensor
    """[N] row of each trained token."""
    token_positions: Tensor
    """[N] position of each trained token in its row."""
    behaviour_logprobs: Tensor
    """[N] the engine's log-prob of each trained token at sampling."""
    turn_of_token: Tensor
    """[N] the turn (0..S-1) each trained token belongs to."""
    value_rows: Tensor
    """[P] row of each value point."""
    value_positions: Tensor
    """[P] position of each value point: the last prompt token before its turn's reply
    (turn-level), or the token before its trained token (token-level)."""
    point_of_token: Tensor
    """[N] the value point whose advantage each trained token gets."""
    turn_of_point: Tensor
    """[P] the turn (0..S-1) of each value point."""
    episode_of_turn: Tensor
    """[S] episode (index into the collated rollouts) of each turn; non-decreasing."""
    valid_code: Tensor
    """[S] bool: the reply held valid code."""
    last_turn: Tensor
    """[S] bool: the episode's last turn."""
    episode_passed: Tensor
    """[S] bool: the episode's final program passes all tests."""

    @property
    def num_turns(self) -> int:
        return len(self.episode_of_turn)

    def targets(
        self,
        reference_logprobs: Tensor,
        values: Tensor,
        beta: float = algo.KL_BETA,
        no_code_penalty: float = algo.NO_CODE_PENALTY,
    ) -> tuple[Tensor, Tensor]:
        """`learner.algo.targets` of this batch: the returns G_t [S] and the advantages
        [P], given the reference's log-probs of the trained tokens [N] and the values at
        the value points [P]. The KL penalty is taken on the policy that sampled the
        tokens: the engine's behaviour log-probs."""
        return algo.targets(
            self.behaviour_logprobs,
            reference_logprobs,
            self.turn_of_token,
            self.episode_of_turn,
            self.valid_code,
            self.last_turn,
            self.episode_passed,
            values,
            self.turn_of_point,
            beta,
            no_code_penalty,
        )

    def model_inputs(self) -> dict:
        """Keyword arguments of a transformers model's forward for this batch."""
        return {"input_ids": self.input_ids, "position_ids": self.position_ids, "use_cache": False}

    def to(self, device) -> TrainingBatch:
        """The batch with every tensor on `device`."""
        moved = {
            name: value.to(device) if isinstance(value, Tensor) else value
            for name, value in vars(self).items()
        }
        return TrainingBatch(**moved)


def value_points(summary: RolloutSummary, value_level: str) -> int:
    """How many value points the rollout of `summary` has (see the module docstring):
    one per reply, or per reply token."""
    return summary.turns if value_level == "turn" else summary.trained_tokens


def collate(
    rollouts: list[Rollout],
    pad_id: int,
    placement: list[tuple[int, int]] | None = None,
    value_level: str = "turn",
) -> TrainingBatch:
    """One batch of `rollouts` (each with at least one turn), its values read at
    `value_level`'s points. `placement[i]` = (row, first position) of rollout i
    (`learner.packing.placement`); by default one rollout per row. Tokens and turns come
    in rollout order, whatever the placement."""
    if value_level not in VALUE_LEVELS:
        raise ValueError(f"value_level {value_level!r} is not one of {', '.join(VALUE_LEVELS)}")
    placement = placement or [(index, 0) for index in range(len(rollouts))]
    ends = {}
    for rollout, (row, offset) in zip(rollouts, placement, strict=True):
        ends[row] = max(ends.get(row, 0), offset + len(rollout.token_ids))
    width = max(ends.values())
    input_ids = torch.full((max(ends) + 1, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros_like(input_ids)
    for row, end in ends.items():  # padding is a sequence of its own
        position_ids[row, end:] = torch.arange(width - end)
    rows, positions, behaviour, turn_of_token = [], [], [], []
    value_rows, value_positions, valid, last, passed = [], [], [], [], []
    for rollout, (row, offset) in zip(rollouts, placement, strict=True):
        if not rollout.turns:
            raise ValueError(f"rollout of {rollout.problem!r} has no turn to train on")
        length = len(rollout.token_ids)
        input_ids[row, offset : offset + length] = torch.tensor(rollout.token_ids)
        position_ids[row, offset : offset + length] = torch.arange(length)
        starts = rollout.reply_starts
        for turn, start in enumerate(starts):
            index = len(value_rows)
            end = starts[turn + 1] if turn + 1 < len(starts) else length
            for position in range(start, end):
                if rollout.trained_mask[position]:
                    rows.append(row)
                    positions.append(offset + position)
                    behaviour.append(rollout.behaviour_logprobs[position])
                    turn_of_token.append(index)
            value_rows.append(row)
            value_positions.append(offset + start - 1)
            valid.append(rollout.turns[turn].code is not None)
            last.append(turn == len(starts) - 1)
            passed.append(rollout.passed)
    episode_of_turn = []
    for episode, rollout in enumerate(rollouts):
        episode_of_turn += [episode] * len(rollout.reply_starts)
    if value_level == "turn":
        point_of_token, turn_of_point = turn_of_token, list(range(len(value_rows)))
    else:
        value_rows, value_positions = rows, [position - 1 for position in positions]
        point_of_token, turn_of_point = list(range(len(rows))), turn_of_token
    return TrainingBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        real_tokens=sum(len(r.token_ids) for r in rollouts),
        token_rows=torch.tensor(rows, dtype=torch.long),
        token_positions=torch.tensor(positions, dtype=torch.long),
        behaviour_logprobs=torch.tensor(behaviour, dtype=torch.float32),
        turn_of_token=torch.tensor(turn_of_token, dtype=torch.long),
        value_rows=torch.tensor(value_rows, dtype=torch.long),
        value_positions=torch.tensor(value_positions, dtype=torch.long),
        point_of_token=torch.tensor(point_of_token, dtype=torch.long),
        turn_of_point=torch.tensor(turn_of_point, dtype=torch.long),
        episode_of_turn=torch.tensor(episode_of_turn, dtype=torch.long),
        valid_code=torch.tensor(valid),
        last_turn=torch.tensor(last),
        episode_passed=torch.tensor(passed),
    )


def token_logprobs(logits: Tensor, batch: TrainingBatch) -> Tensor:
    """log-softmax of `logits` [B, L, V] at each trained token -> [N] (logits at p - 1
    predict the token at p)."""
    predicting = logits[batch.token_rows, batch.token_positions - 1].float()
    tokens = batch.input_ids[batch.token_rows, batch.token_positions]
    return torch.log_softmax(predicting, -1).gather(1, tokens[:, None])[:, 0]
