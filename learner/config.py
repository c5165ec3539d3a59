"""What the learner group is told: its size, DeepSpeed's settings, the optimizer, the
objective's constants and where checkpoints go. Defaults are the paper's (Gehring et al.
2025, 8B); the tiny config in `conf/learner/` scales them down."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox import ConfigError

from .algo import CLIP_EPS, KL_BETA, NO_CODE_PENALTY, VALUE_CLIP
from .batch import VALUE_LEVELS

TRANSPORTS = ("object_store", "distributed")


class LearnerConfigError(ConfigError):
    """A learner setting that cannot work; the message names the field."""


@dataclass
class LearnerConfig:
    num_ranks: int = 2
    """DeepSpeed ranks, one Ray actor each (one GPU each on GPUs)."""
    device: str = "cpu"
    """`cpu` (gloo, float32) or `cuda` (nccl, `dtype`)."""
    dtype: str = "float32"
    """Model dtype on GPUs: `bfloat16` (the paper); CPU always trains in float32."""
    zero_stage: int = 2
    """DeepSpeed ZeRO stage: 2 shards optimizer state and gradients; 3 also the
    parameters (70B)."""
    cpus_per_rank: float = 1
    """CPUs each rank's Ray actor reserves (and torch threads on CPU)."""
    updates_per_iteration: int = 4
    """Optimizer steps per iteration; the iteration's rollouts are split evenly among them
    (paper: 1024 rollouts, 4 updates of 256)."""
    micro_batch_tokens: int = 16384
    """Token budget of one forward/backward (padding included): memory is set by it.
    Sequences are bucketed by length so that padding stays small."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory for long dialogs."""
    lr: float = 2e-7
    """AdamW learning rate of the policy (paper: 2e-7)."""
    value_lr: float = 2e-7
    """AdamW learning rate of the value model."""
    weight_decay: float = 0.1
    """AdamW's decoupled weight decay, on weight matrices and embeddings only: biases and
    norm scales are not decayed (`learner.rank.parameter_groups`)."""
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 50
    """Linear warm-up of both learning rates over this many updates."""
    lr_decay_steps: int = 0
    """After warm-up, both learning rates fall linearly to `lr_final_fraction` of their
    value at this update, and stay there; 0 keeps them constant (the paper)."""
    lr_final_fraction: float = 0.1
    """Share of the learning rates left at `lr_decay_steps`."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm (0: off)."""
    value_level: str = "turn"
    """`turn`: one value per turn, V(c_t), read before its reply (RLEF); `token`: a value
    per reply token, the ablation the paper found worse."""
    kl_beta: float = KL_BETA
    clip_eps: float = CLIP_EPS
    value_clip: float = VALUE_CLIP
    no_code_penalty: float = NO_CODE_PENALTY
    transport: str = "object_store"
    """How new weights reach the inference engines: `object_store` (Ray's, the default on
    one machine) or `distributed` (a torch.distributed broadcast from rank 0: NCCL on
    GPUs, gloo on CPU)."""
    bind_host: str | None = "127.0.0.1"
    """Address the ranks' rendezvous ports (torch.distributed stores; gloo on CPU) listen
    on: loopback keeps a one-machine run private; None takes each node's address, which
    a run across nodes needs (`learner=paper`, `learner=paper_70b`)."""
    bucket_mb: int = 32
    """`distributed` transport: the weights travel in buckets of about this size."""
    seed: int = 0

    def __post_init__(self) -> None:
        """Raise `LearnerConfigError` for settings that cannot work."""
        problems = []
        if self.num_ranks < 1:
            problems.append(f"learner.num_ranks must be >= 1, got {self.num_ranks}")
        if self.device not in ("cpu", "cuda"):
            problems.append(f"learner.device must be cpu or cuda, got {self.device!r}")
        if self.zero_stage not in (0, 1, 2, 3):
            problems.append(f"learner.zero_stage must be 0-3, got {self.zero_stage}")
        if self.dtype not in ("float32", "bfloat16"):
            problems.append(f"learner.dtype must be float32 or bfloat16, got {self.dtype!r}")
        if self.updates_per_iteration < 1:
            problems.append("learner.updates_per_iteration must be >= 1")
        if self.lr_decay_steps < 0:
            problems.append(f"learner.lr_decay_steps must be >= 0, got {self.lr_decay_steps}")
        if not 0.0 <= self.lr_final_fraction <= 1.0:
            problems.append(
                f"learner.lr_final_fraction must be in [0, 1], got {self.lr_final_fraction}"
            )
        if self.micro_batch_tokens < 1:
            problems.append("learner.micro_batch_tokens must be >= 1")
        if self.value_level not in VALUE_LEVELS:
            problems.append(
                f"learner.value_level must be one of {', '.join(VALUE_LEVELS)}, "
                f"got {self.value_level!r}"
            )
        if self.transport not in TRANSPORTS:
            problems.append(
                f"learner.transport must be one of {', '.join(TRANSPORTS)}, got {self.transport!r}"
            )
        if problems:
            raise LearnerConfigError("; ".join(problems))

    @property
    def torch_dtype(self):
        import torch

        return torch.float32 if self.device == "cpu" else getattr(torch, self.dtype)
