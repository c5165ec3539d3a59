"""The turn-level value model: the policy's backbone with a scalar head.

Initialised from the policy's weights (the paper); the head starts at zero, so every
initial value is 0 and the first advantages are the plain returns. V(c_t) is read at
the last prompt token before reply t (`TrainingBatch.value_positions`; or, in the
token-level ablation, at the token before each reply token).
"""

from __future__ import annotations

from torch import Tensor, nn

from .batch import TrainingBatch


class ValueModel(nn.Module):
    """`backbone` (a Hugging Face base model) and a linear head to one scalar per token."""

    def __init__(self, backbone: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_pretrained(cls, location: str, dtype) -> ValueModel:
        """The value model of the causal LM at `location`: its backbone, loaded again (so
        it trains apart from the policy, and under ZeRO-3 loads already partitioned)."""
        from transformers import AutoModel

        backbone = AutoModel.from_pretrained(location, dtype=dtype)
        return cls(backbone, backbone.config.hidden_size).to(dtype)

    def forward(self, **model_inputs) -> Tensor:
        """Values at every position: the backbone's inputs ([B, L] `input_ids`, and
        `position_ids` or `attention_mask`) -> [B, L]."""
        hidden = self.backbone(**model_inputs)
        return self.head(hidden.last_hidden_state).squeeze(-1)

    def point_values(self, batch: TrainingBatch) -> Tensor:
        """The values at `batch`'s value points: V(c_t) for every turn at turn level [P]."""
        values = self(**batch.model_inputs())
        return values[batch.value_rows, batch.value_positions]
