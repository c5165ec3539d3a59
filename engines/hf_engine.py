"""The `transformers` engine backend, for machines where vLLM cannot be installed.

Same interface as `VLLMEngine`; slower (no paged KV cache, no continuous batching). The
behaviour log-probs are read from the scores `generate` sampled from, i.e. after
temperature and top-p, as vLLM's `processed_logprobs` gives them.
"""

from __future__ import annotations

import time

from . import weight_broadcast
from .generation import Completion, EngineConfig, ModelConfig, SamplingConfig
from .weights import PackedWeights, deserialize_weights


class HFEngine:
    """A Hugging Face causal LM behind the engine interface."""

    def __init__(self, model, tokenizer, device: str = "cpu") -> None:
        """Serve `model` (a loaded causal LM, already on `device`) with its `tokenizer`."""
        self.device = device
        self.weight_version = 0
        self.weight_group = None
        self.model = model
        self.model.eval()
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_id
        )

    @classmethod
    def load(cls, config: EngineConfig, model: ModelConfig) -> HFEngine:
        """The engine for `model`, loaded from its folder or hub id onto `config.device`."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        module = AutoModelForCausalLM.from_pretrained(
            model.location(), dtype=getattr(torch, model.dtype)
        ).to(config.device)
        return cls(module, AutoTokenizer.from_pretrained(model.location()), config.device)

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int] | None = None
    ) -> list[Completion]:
        """One reply per prompt. `generate` has one random stream per batch, so `seeds[0]`
        seeds the whole batch: the same batch with the same seeds samples the same."""
        import torch

        if seeds is not None:
            torch.manual_seed(seeds[0])
        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):  # left padding: every reply starts at `width`
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        device = self.device
        with torch.no_grad():
            output = self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=0,
                max_new_tokens=sampling.max_new_tokens,
                eos_token_id=self.eos_token_id,
                pad_token_id=self.pad_token_id,
                output_scores=True,
                return_dict_in_generate=True,
            )
        replies = output.sequences[:, width:].cpu()
        logprobs = torch.stack(
            [torch.log_softmax(scores.float(), dim=-1).cpu() for scores in output.scores], dim=1
        ).gather(2, replies[:, :, None])[:, :, 0]
        completions = []
        for row in range(len(prompts)):
            tokens = replies[row].tolist()
            stopped = self.eos_token_id in tokens
            length = tokens.index(self.eos_token_id) + 1 if stopped else len(tokens)
            completions.append(
                Completion(
                    tuple(tokens[:length]),
                    tuple(logprobs[row, :length].tolist()),
                    "stop" if stopped else "length",
                    self.weight_version,
                )
            )
        return completions

    def sequence_logprobs(self, token_ids: list[int]) -> list[float]:
        """log p(token_i | tokens before it) for i >= 1, at temperature 1 (for checks)."""
        import torch

        ids = torch.tensor([token_ids], device=self.device)
        with torch.no_grad():
            logits = self.model(ids).logits[0, :-1].float()
        return torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0].tolist()

    def update_weights(self, payload: PackedWeights, version: int) -> float:
        """Load new weights (from `engines.weights.serialize_weights`) and tag them `version`;
        the seconds the load took."""
        return self._load(deserialize_weights(payload), version)

    def _load(self, weights: dict, version: int) -> float:
        started = time.perf_counter()
        self.model.load_state_dict(weights)
        self.weight_version = version
        return time.perf_counter() - started

    def open_weight_group(self, host: str, port: int, first_rank: int, world_size: int) -> None:
        """Join the learner's weight group as rank `first_rank`, leaving the one it was in."""
        weight_broadcast.close_group(self.weight_group)
        self.weight_group = weight_broadcast.open_group(
            host, port, first_rank, world_size, self.device
        )

    def receive_weights(self, buckets: list, version: int) -> float:
        """Receive the weights learner rank 0 broadcasts in `buckets`; tag them `version`;
        the seconds the load took."""
        return self._load(
            dict(weight_broadcast.receive(self.weight_group, buckets, self.device)), version
        )
