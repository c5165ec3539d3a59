"""The training app's structured config: one dataclass per group of `conf/`, every field
documented where it is declared. Defaults are the paper's (Gehring et al. 2025, 8B);
`conf/train.yaml` picks the tiny local setup, and `+experiment=paper_8b` (or `paper_70b`)
the paper's runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from actors.dialog import DialogConfig
from engines.generation import EngineConfig, ModelConfig
from launch.chaos import ChaosConfig
from learner.config import LearnerConfig
from problems.config import DataConfig
from sandbox import ConfigError, SandboxConfig

SCHEDULES = ("sync", "async")


@dataclass
class ActorsConfig:
    num_inference: int = 1
    """Inference actors, one engine each (the paper's 8B: 160 engines on 160 GPUs)."""
    cpus_per_inference: float = 1
    """CPUs each inference actor reserves (its engine, its sandbox's fork servers)."""
    gpus_per_inference: float = 0
    """GPUs each inference actor reserves (= engine.tensor_parallel_size on GPUs)."""
    chunk_size: int = 32
    """Episodes an actor plays per call: the unit of work redone if an actor dies."""
    num_sandbox: int = 1
    """Sandbox actors (`sandbox-i`) that judge every engine's programs, each with
    `sandbox.workers` fork servers; 0: each inference actor judges its own programs on
    fork servers of its own (one machine: no Ray call per program)."""
    cpus_per_sandbox: float = 1
    """CPUs each sandbox actor reserves (its fork servers run the programs)."""
    hang_factor: float = 5.0
    """An engine whose chunk has been in flight this many times longer than the longest
    chunk took so far (in this run) is taken for hung: killed, restarted by Ray, and the
    chunk played again (`actors.pool.HangWatch`)."""
    hang_min_s: float = 120.0
    """The shortest deadline a chunk gets, however quick the chunks before it were."""
    hang_first_s: float = 1800.0
    """The deadline before any chunk has finished: it covers the engines' start (a 70B
    model loading on 8 GPUs)."""

    def __post_init__(self) -> None:
        """Raise `ConfigError` for a hang deadline that cannot work."""
        if self.hang_factor <= 1 or self.hang_min_s <= 0 or self.hang_first_s <= 0:
            raise ConfigError(
                "actors.hang_factor must be > 1, actors.hang_min_s and actors.hang_first_s "
                f"> 0; got {self.hang_factor}, {self.hang_min_s}, {self.hang_first_s}"
            )


@dataclass
class TrainerConfig:
    iterations: int = 100
    """Iterations to run (each: rollouts, updates, weight sync)."""
    rollouts_per_iteration: int = 1024
    """Episodes per iteration (paper: 1024); `learner.updates_per_iteration` splits them."""
    schedule: str = "sync"
    """`sync` (the paper: generate with version v, train, broadcast) or `async` (the next
    iteration's rollouts are generated while the learner trains)."""
    max_staleness: int = 1
    """`async`: rollouts may be this many weight versions behind the learner at most."""
    seed: int = 0
    """Seeds the problem order, sampling, and the learner."""

    @property
    def look_ahead(self) -> int:
        """Iterations the rollouts may be played ahead of the learner (0: sync)."""
        return self.max_staleness if self.schedule == "async" else 0

    @property
    def queue_capacity(self) -> int:
        """Rollouts the replay queue holds: an iteration's, and those played ahead."""
        return self.rollouts_per_iteration * (1 + self.look_ahead)


@dataclass
class EvalDuringTrainingConfig:
    every: int = 10
    """Evaluate 1@3 on the validation split every this many iterations (0: only before
    training and at the end)."""
    split: str = "valid"
    problems: int | None = None
    """Problems of the split to evaluate (None: all)."""
    rollouts: int = 1
    """1@3 rollouts per problem (temperature 0.2, top-p 0.95), with the paper's execution
    feedback on the public tests whatever the training dialog's (`dialog.feedback`,
    `dialog.feedback_tests`); `dialog.max_turns` as in training."""
    random_control: bool = True
    """At the first and the last evaluation, also play the same dialogs (same seeds) with
    random feedback, another problem's, and report the repair gap: what turns 2.. add with
    execution feedback minus what they add with random feedback."""


@dataclass
class RunConfig:
    dir: str = "${hydra:runtime.output_dir}"
    """Where the run's files go (Hydra's output folder by default)."""
    checkpoint_every: int = 10
    """Write a learner checkpoint every this many iterations (and at the end)."""
    keep_checkpoints: int = 2
    """Complete checkpoints kept (older ones are removed)."""
    report: bool = True
    """Render `report.html` at the end."""
    resume: bool = False
    """Continue this `run.dir` from its last complete checkpoint: at the iteration after
    it, with the same data order and sampling seeds; `metrics.jsonl` goes on without a gap
    or a duplicate."""
    max_restarts: int = 3
    """Times a run relaunches its learner group by itself after a rank died: from the last
    complete checkpoint (or from the start if there is none yet), the engines re-synced,
    `metrics.jsonl` cut back to it and continued. Once they are used up, the run stops
    and says how to resume."""

    def __post_init__(self) -> None:
        """Raise `ConfigError` for settings that cannot work."""
        if self.max_restarts < 0:
            raise ConfigError(f"run.max_restarts must be >= 0, got {self.max_restarts}")


ROLES = ("learner", "inference", "sandbox")
"""The node roles, by the actors that go on them."""
RAY_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
"""Ray's own resources: no node role can be one of them."""


@dataclass
class ClusterConfig:
    name: str = "local"
    """Which layout this is (`local`, `paper_8b`, `paper_70b`)."""
    address: str | None = None
    """Ray cluster to join (None: start a local Ray, or join the one `ray job submit`
    runs the job in)."""
    num_cpus: int | None = None
    """Local Ray only: logical CPUs to declare (None: Ray counts them)."""
    gpus_per_node: int = 8
    """GPUs per node (an H100 HGX node has 8): the dry run counts nodes with it."""
    learner_resource: str | None = None
    """The custom resource that marks the nodes learner ranks go on: such a node declares
    it when it starts (`ray start --resources='{"rlef_learner": 1}'`) and every rank asks
    for a sliver of it (`ROLE_SHARE`). None: any node with room."""
    inference_resource: str | None = None
    """The same for the inference actors (engines)."""
    sandbox_resource: str | None = None
    """The same for the sandbox actors (`actors.num_sandbox` > 0)."""
    expected_turns: float | None = None
    """Dry-run assumption: mean turns per dialog (at most `dialog.max_turns`). This and
    the five figures below give the plan's tokens and time per iteration (None: no
    estimate)."""
    expected_prompt_tokens: float | None = None
    """Dry-run assumption: prompt tokens a turn adds to the dialog (the statement on turn
    1, the execution feedback after)."""
    expected_reply_tokens: float | None = None
    """Dry-run assumption: tokens of one reply."""
    generate_tokens_per_s: float | None = None
    """Dry-run assumption: reply tokens per second one inference engine generates while
    it plays a chunk of `actors.chunk_size` dialogs (prompt processing folded in)."""
    train_tokens_per_s: float | None = None
    """Dry-run assumption: tokens per second one learner GPU takes through forward and
    backward of one model (the usual fine-tuning throughput figure)."""
    weight_sync_gbytes_per_s: float | None = None
    """Dry-run assumption: GB/s (1e9 bytes) at which new weights reach every engine,
    gathering and the engines' own load included."""

    def __post_init__(self) -> None:
        """Raise `ConfigError` for a node role that is not a custom resource."""
        for role in ROLES:
            resource = role_resource(self, role)
            if resource is not None and (not resource or resource in RAY_RESOURCES):
                raise ConfigError(
                    f"cluster.{role}_resource must name a custom resource that the "
                    f"{role} nodes declare at `ray start --resources`, got {resource!r}"
                )


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    dialog: DialogConfig = field(default_factory=DialogConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    actors: ActorsConfig = field(default_factory=ActorsConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalDuringTrainingConfig = field(default_factory=EvalDuringTrainingConfig)
    run: RunConfig = field(default_factory=RunConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    chaos: ChaosConfig = field(default_factory=ChaosConfig)
    experiment: str = "default"
    """The ablation this run is (set by `+experiment=...`)."""
    dry_run: bool = False
    """Print the plan (placement, model size, memory per GPU, tokens and time per
    iteration; `launch/plan.py`) and exit: no run folder, no model check, no Ray."""

    def check(self) -> None:
        """Raise `ConfigError` (naming the keys) for settings of several groups that
        cannot work together for a run (each group checks its own as it is made; a
        group may compose alone, e.g. `learner=paper`, and be refused here)."""
        trainer, learner = self.trainer, self.learner
        if trainer.schedule not in SCHEDULES:
            raise ConfigError(
                f"trainer.schedule must be one of {SCHEDULES}, got {trainer.schedule!r}"
            )
        if trainer.schedule == "async" and trainer.max_staleness < 1:
            raise ConfigError("trainer.max_staleness must be >= 1 for trainer.schedule=async")
        if trainer.iterations < 1 or trainer.rollouts_per_iteration < 1:
            raise ConfigError("trainer.iterations and trainer.rollouts_per_iteration must be >= 1")
        if trainer.rollouts_per_iteration // learner.updates_per_iteration < learner.num_ranks:
            raise ConfigError(
                f"trainer.rollouts_per_iteration={trainer.rollouts_per_iteration} in "
                f"learner.updates_per_iteration={learner.updates_per_iteration} updates "
                f"gives fewer rollouts per update than learner.num_ranks={learner.num_ranks}"
            )
        sampling = self.dialog.sampling
        if sampling.temperature != 1.0 or sampling.top_p != 1.0:
            raise ConfigError(
                "dialog.sampling.temperature and dialog.sampling.top_p must be 1.0 for "
                f"training (got {sampling.temperature} and {sampling.top_p}): the learner "
                "takes the engine's log-probs as the policy's, in the PPO ratio and the KL "
                "penalty"
            )
        if self.actors.num_inference < 1 or self.actors.num_sandbox < 0:
            raise ConfigError("actors.num_inference must be >= 1 and actors.num_sandbox >= 0")


ROLE_SHARE = 0.001
"""How much of its node role's resource each actor asks for: a sliver, so that a node
declaring 1 takes any number of them; CPUs and GPUs are what limit how many fit."""


def role_resource(cluster: ClusterConfig, role: str) -> str | None:
    """The custom resource that marks `role`'s nodes (None: any node)."""
    return getattr(cluster, f"{role}_resource")


def role_request(cluster: ClusterConfig, role: str) -> dict[str, float]:
    """What an actor of `role` adds to its Ray resources to go on that role's nodes."""
    resource = role_resource(cluster, role)
    return {resource: ROLE_SHARE} if resource else {}


def cpu_reservations(config: TrainConfig) -> dict[str, tuple[int, float]]:
    """The logical CPUs the run's actors reserve on Ray, by kind: (actors, CPUs each)."""
    return {
        "learner": (config.learner.num_ranks, config.learner.cpus_per_rank),
        "inference": (config.actors.num_inference, config.actors.cpus_per_inference),
        "sandbox": (config.actors.num_sandbox, config.actors.cpus_per_sandbox),
    }


def cpus_reserved(config: TrainConfig) -> float:
    """All of `cpu_reservations`, added up."""
    return sum(count * each for count, each in cpu_reservations(config).values())


def with_cpus_scaled(config: TrainConfig, factor: float) -> TrainConfig:
    """`config` with every actor's CPU reservation times `factor`, rounded down to Ray's
    resolution (1e-4), so that the scaled reservations fit what they were scaled to."""

    def scaled(cpus: float) -> float:
        return math.floor(cpus * factor * 10_000) / 10_000

    return replace(
        config,
        learner=replace(config.learner, cpus_per_rank=scaled(config.learner.cpus_per_rank)),
        actors=replace(
            config.actors,
            cpus_per_inference=scaled(config.actors.cpus_per_inference),
            cpus_per_sandbox=scaled(config.actors.cpus_per_sandbox),
        ),
    )
