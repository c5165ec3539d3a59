"""Live metrics of a run on Ray's Prometheus endpoint (`ray.util.metrics`): what the Ray
dashboard's metrics tab and our Grafana dashboard (`launch/grafana/`) show.

Every name starts with `rlef_` (Ray's exporter adds its own `ray_` in front, and counters
get a `_total` suffix). Counters are totals: Grafana shows their rate (rollouts/s,
tokens/s). Each process builds its own instances, in the process that records them, with
the recording actor's name as the `actor` tag. Outside Ray they record nothing.
"""

from __future__ import annotations

import time
import warnings

from ray.util.metrics import Counter, Gauge


def _in_actor() -> bool:
    import ray

    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


def actor_name() -> str:
    """The current Ray actor's name (`inference-0`, ...), or `driver` outside an actor."""
    import ray

    return (ray.get_runtime_context().get_actor_name() if _in_actor() else None) or "driver"


def count_restart(kind: str) -> None:
    """Count this actor's start if Ray is restarting it after a death (rlef_actor_restarts,
    tagged `kind`: inference, sandbox)."""
    import ray

    with warnings.catch_warnings():  # Ray's property calls its own deprecated one
        warnings.simplefilter("ignore", DeprecationWarning)
        restarted = _in_actor() and ray.get_runtime_context().was_current_actor_reconstructed
    if restarted:
        restarts = Counter(
            "rlef_actor_restarts",
            description="Actors Ray restarted after they died, by kind.",
            tag_keys=("kind", "actor"),
        )
        restarts.inc(1.0, tags={"kind": kind, "actor": actor_name()})


def actor_metric(metric_class: type, name: str, description: str, **options):
    """A `metric_class` (Counter, Gauge or Histogram of `ray.util.metrics`) whose series
    carry the recording actor's name as the tag `actor`."""
    metric = metric_class(name, description=description, tag_keys=("actor",), **options)
    metric.set_default_tags({"actor": actor_name()})
    return metric


class InferenceMetrics:
    """What an inference actor records per `play` call."""

    def __init__(self) -> None:
        self.rollouts = actor_metric(Counter, "rlef_rollouts", "Episodes played (rollouts).")
        self.generated_tokens = actor_metric(
            Counter, "rlef_generated_tokens", "Tokens the engine generated (replies only)."
        )
        self.busy_fraction = actor_metric(
            Gauge,
            "rlef_engine_busy_fraction",
            "Share of the time since the previous call that the engine spent playing episodes.",
        )
        self._idle_since = time.monotonic()

    def played(self, rollouts: list, started: float) -> None:
        """Record a `play` call that began at `started` (time.monotonic) and just ended."""
        now = time.monotonic()
        if rollouts:
            self.rollouts.inc(float(len(rollouts)))
        tokens = sum(sum(rollout.trained_mask) for rollout in rollouts)
        if tokens:
            self.generated_tokens.inc(float(tokens))
        span = now - min(self._idle_since, started)
        self.busy_fraction.set((now - started) / span if span > 0 else 1.0)
        self._idle_since = now


class QueueMetrics:
    """What the replay queue records when it changes."""

    def __init__(self) -> None:
        self.depth = actor_metric(
            Gauge, "rlef_replay_queue_depth", "Rollouts waiting in the replay queue."
        )
        self.dropped = actor_metric(
            Counter,
            "rlef_stale_rollouts_dropped",
            "Rollouts dropped for being more than max_staleness versions old.",
        )


class TrainerMetrics:
    """What the driver records once per iteration."""

    def __init__(self) -> None:
        self.weight_version = actor_metric(
            Gauge, "rlef_weight_version", "The learner's weight version (iterations trained)."
        )
        self.update_seconds = actor_metric(
            Gauge,
            "rlef_learner_update_seconds",
            "Seconds the learner group spent on the last iteration's updates.",
        )
        self.sync_seconds = actor_metric(
            Gauge,
            "rlef_weight_sync_seconds",
            "Seconds the last weight broadcast to the engines took.",
        )

    def iteration(self, version: int, update_s: float, sync_s: float) -> None:
        self.weight_version.set(float(version))
        self.update_seconds.set(update_s)
        self.sync_seconds.set(sync_s)


def restarts_by_kind(kinds: tuple[str, ...]) -> dict[str, int]:
    """Restarts so far of the current job's actors named `<kind>-<i>`, per kind, from
    Ray's actor table (the GCS's: the public state API needs the dashboard, which local
    runs do not start)."""
    import ray
    from ray._private import state

    counts = dict.fromkeys(kinds, 0)
    job = ray.JobID.from_hex(ray.get_runtime_context().get_job_id())
    for actor in state.actors(job_id=job).values():
        kind = (actor.get("Name") or "").rpartition("-")[0]
        if kind in counts:
            counts[kind] += actor["NumRestarts"]
    return counts
