"""The sandbox on Ray: `SandboxActor` (a thin wrapper over `Sandbox`) and `SandboxPool`.

The pool spreads jobs over M actors with a bounded number in flight. Ray restarts an
actor that dies (`max_restarts=-1`); the pool re-submits the jobs that were in flight on
it, at most `max_attempts` times each, so every job gets exactly one judgement: its
own, or `runtime_error` if it kept killing actors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ray
from ray.util.metrics import Counter, Histogram

from sandbox import Job, Judgement, Sandbox, SandboxConfig, TestResult

from .metrics import actor_metric, count_restart
from .pool import PoolStats, run_on_actors

QUEUE_WAIT_BOUNDARIES_S = [0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0]
"""Histogram buckets of rlef_sandbox_queue_wait_seconds."""


class MeteredSandbox(Sandbox):
    """A `Sandbox` that records on Ray's metrics endpoint: programs judged
    (rlef_sandbox_executions) and how long each waited for a fork server
    (rlef_sandbox_queue_wait_seconds), tagged with the actor's name."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        super().__init__(config)
        count_restart("sandbox")
        self._executions = actor_metric(
            Counter,
            "rlef_sandbox_executions",
            "Programs judged by the sandbox (each on all its tests).",
        )
        self._queue_wait = actor_metric(
            Histogram,
            "rlef_sandbox_queue_wait_seconds",
            "Seconds a program waited for a free fork server.",
            boundaries=QUEUE_WAIT_BOUNDARIES_S,
        )

    def job_started(self, queue_wait_s: float) -> None:
        self._queue_wait.observe(queue_wait_s)

    def run(self, job: Job) -> Judgement:
        judgement = super().run(job)
        self._executions.inc()
        return judgement


SandboxActor = ray.remote(max_restarts=-1, max_task_retries=0)(MeteredSandbox)
"""One `Sandbox` (with `config.workers` fork servers) in its own Ray worker process."""


def _abandoned(job: Job, attempts: int) -> Judgement:
    failed = TestResult(
        "runtime_error", 0.0, "", f"sandbox: the job's actor died {attempts} times running it"
    )
    return Judgement.of([failed] * len(job.tests), len(job.tests))


class SandboxPool:
    """M sandbox actors that judge batches of jobs; results come back in input order.
    The pool is a plain object holding actor handles: it can be sent to other actors
    (an inference actor judges its episodes' programs on a shared pool)."""

    def __init__(
        self,
        actors: list,
        workers: int,
        max_attempts: int = 3,
        max_in_flight: int | None = None,
        names: list[str] | None = None,
    ) -> None:
        """A pool over running `SandboxActor`s of `workers` fork servers each (named
        `names`, if they have names)."""
        if not actors or max_attempts < 1:
            raise ValueError("a sandbox pool needs at least one actor and max_attempts >= 1")
        self.actors = actors
        self.names = names
        self.max_attempts = max_attempts
        # Two jobs per fork server: one running, one ready to start when it ends.
        self.max_in_flight = max_in_flight or 2 * len(actors) * workers
        self.stats = PoolStats()

    @classmethod
    def start(
        cls,
        config: SandboxConfig,
        num_actors: int,
        max_attempts: int = 3,
        max_in_flight: int | None = None,
        name_prefix: str | None = None,
        num_cpus_per_actor: float = 1.0,
        resources: dict[str, float] | None = None,
    ) -> SandboxPool:
        """Start `num_actors` sandbox actors (named `{name_prefix}-i` if given), each
        asking for `resources` too (custom ones: a node role); returns once they are up."""
        if num_actors < 1:
            raise ValueError("a sandbox pool needs num_actors >= 1")
        actors = []
        names = [f"{name_prefix}-{i}" for i in range(num_actors)] if name_prefix else None
        for index in range(num_actors):
            # Jobs queue in the actor, where their wait for a fork server is measured.
            options = {
                "max_concurrency": 2 * config.workers,
                "num_cpus": num_cpus_per_actor,
                "resources": resources or {},
            }
            if names is not None:
                options["name"] = names[index]
            actors.append(SandboxActor.options(**options).remote(config))
        # Up, and findable by name, before anyone is told their names (`by_name`).
        ray.get([actor.__ray_ready__.remote() for actor in actors])
        return cls(actors, config.workers, max_attempts, max_in_flight, names)

    @classmethod
    def by_name(cls, names: list[str], workers: int, max_attempts: int = 3) -> SandboxPool:
        """The pool of running sandbox actors named `names` (of this job), found by
        name: how another actor reaches them, even after it restarted."""
        return cls([ray.get_actor(name) for name in names], workers, max_attempts, names=names)

    def run(
        self, jobs: Sequence[Job], on_done: Callable[[], None] | None = None
    ) -> list[Judgement]:
        """Judge every job exactly once (see the module docstring); `on_done` ticks progress."""

        def abandon(index: int, attempts: int) -> Judgement:
            self.stats.abandoned_jobs += 1
            return _abandoned(jobs[index], attempts)

        return run_on_actors(
            self.actors,
            jobs,
            submit=lambda actor, job: actor.run.remote(job),
            probe=lambda actor: actor.run_many.remote([]),
            max_in_flight=self.max_in_flight,
            max_attempts=self.max_attempts,
            stats=self.stats,
            abandon=abandon,
            on_done=None if on_done is None else lambda index, result: on_done(),
        )

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors.clear()
