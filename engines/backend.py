"""The engine interface, and choosing a backend by config: the same calls on vLLM and on
transformers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .generation import BACKENDS, Completion, EngineConfig, ModelConfig, SamplingConfig

if TYPE_CHECKING:
    from .weights import PackedWeights


class Engine(Protocol):
    """What dialogs and weight syncs call on an engine; `VLLMEngine` and `HFEngine` both
    implement it."""

    weight_version: int
    """The version of the weights being served (0: as loaded)."""

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int] | None = None
    ) -> list[Completion]:
        """One reply per prompt (token ids in, token ids and behaviour log-probs out);
        `seeds[i]` seeds request i."""
        ...

    def sequence_logprobs(self, token_ids: list[int]) -> list[float]:
        """log p(token_i | tokens before it) for i >= 1, at temperature 1 (for checks)."""
        ...

    def update_weights(self, payload: PackedWeights, version: int) -> float:
        """Load weights sent through the object store and tag them `version`; the seconds
        the load took."""
        ...

    def open_weight_group(self, host: str, port: int, first_rank: int, world_size: int) -> None:
        """Join the learner's torch.distributed weight group from rank `first_rank` on,
        leaving the one it was in (after a member restarted, the group is formed anew)."""
        ...

    def receive_weights(self, buckets: list, version: int) -> float:
        """Receive the weights learner rank 0 broadcasts in `buckets`; tag them `version`;
        the seconds the load took."""
        ...


def make_engine(config: EngineConfig, model: ModelConfig) -> Engine:
    """A `VLLMEngine` or an `HFEngine` serving `model`, as `config.backend` says."""
    if config.backend == "vllm":
        from .vllm_engine import VLLMEngine

        return VLLMEngine(config, model)
    if config.backend == "hf":
        from .hf_engine import HFEngine

        return HFEngine.load(config, model)
    raise ValueError(f"engine.backend {config.backend!r} is not one of {', '.join(BACKENDS)}")
