"""The learner group: K `LearnerRank` Ray actors in one placement group, and what the
training loop asks of them: train on an iteration's rollouts, send the new weights to
the inference engines, save and restore checkpoints, export the policy."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import ray
from ray.exceptions import RayActorError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from engines.generation import ModelConfig
from engines.rollout import Rollout, StoredRollout, summarize

from . import checkpoint
from .config import LearnerConfig
from .rank import LearnerRank


def store_rollouts(rollouts: list[Rollout], iteration: int, chunk_size: int) -> list[StoredRollout]:
    """`rollouts`, put into the object store by this process, as the episodes of
    `iteration` played in chunks of `chunk_size` (what a rank can train on: `train_from`)."""
    stored = []
    for episode, rollout in enumerate(rollouts):
        group = episode // chunk_size
        in_group = min(chunk_size, len(rollouts) - group * chunk_size)
        summary = summarize(rollout, iteration, episode, group, in_group)
        stored.append(StoredRollout(summary, ray.put(rollout)))
    return stored


class LearnerRankDied(RuntimeError):
    """A learner rank's actor died (its process, node or GPU): the group cannot go on,
    since DeepSpeed's ranks hold shards of one model. The message names the rank."""

    def __init__(self, rank: int, method: str, cause: BaseException) -> None:
        lines = str(cause).strip().splitlines()
        reason = lines[0] if lines else type(cause).__name__
        super().__init__(
            f"learner rank {rank} (actor learner-{rank}) died during {method}: {reason}"
        )
        self.rank = rank


LearnerActor = ray.remote(max_restarts=0)(LearnerRank)
"""A `LearnerRank` in its own Ray worker process (a rank that dies ends the group)."""

PLACEMENT_TIMEOUT_S = 300
RANK_DEATH_WAIT_S = 30
"""When a rank's call fails, how long to wait for the others' calls to tell whether a
rank died (Ray reports a dead actor's calls as failed within seconds)."""


class LearnerGroup:
    """K DeepSpeed ranks, one Ray actor each, named `learner-<rank>`."""

    def __init__(
        self,
        config: LearnerConfig,
        model: ModelConfig,
        node_resources: dict[str, float] | None = None,
    ) -> None:
        """Start the ranks; each also asks for `node_resources` (custom resources that
        mark the nodes it may go on: the learner's node role)."""
        self.config = config
        gpus = 1 if config.device != "cpu" else 0
        bundle = {
            "CPU": config.cpus_per_rank,
            **({"GPU": gpus} if gpus else {}),
            **(node_resources or {}),
        }
        self.placement = placement_group([bundle] * config.num_ranks, strategy="PACK")
        ready, _ = ray.wait([self.placement.ready()], timeout=PLACEMENT_TIMEOUT_S)
        if not ready:
            remove_placement_group(self.placement)
            raise RuntimeError(
                f"the cluster could not place {config.num_ranks} learner ranks of {bundle} "
                f"within {PLACEMENT_TIMEOUT_S} s: `ray status` shows what it has"
            )
        self.ranks = [
            LearnerActor.options(
                name=f"learner-{rank}",
                num_cpus=config.cpus_per_rank,
                num_gpus=gpus,
                resources=node_resources or {},
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.placement, placement_group_bundle_index=rank
                ),
            ).remote(config, model, rank, config.num_ranks)
            for rank in range(config.num_ranks)
        ]
        [(host, port)] = self._wait([self.ranks[0].address.remote()], "setup")
        self._all("setup", host, port)
        self._weight_group: tuple[str, int] | None = None
        """The address of the weight group rank 0 hosts (`distributed`), once opened."""
        self._buckets = None

    def _all(self, method: str, *args) -> list:
        """Call `method` on every rank at once (collectives need them all) and wait."""
        return self._wait([getattr(rank, method).remote(*args) for rank in self.ranks], method)

    @staticmethod
    def _wait(calls: list, method: str, check: Callable[[], None] | None = None) -> list:
        """The results of one call per rank (`calls[i]` on rank i). A dead rank raises
        `LearnerRankDied` at once: the others would wait for it in a collective forever,
        or fail with gloo's or NCCL's view of it ("connection closed by peer").
        `check()`, if given, is called every second meanwhile (it raises to give up)."""
        pending = list(calls)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0 if check else None)
            if not done:
                check()
                continue
            [done] = done
            try:
                ray.get(done)
            except Exception as exc:
                # Name the dead rank, if any: the others fail with gloo's or NCCL's view
                # of it. Every call's outcome is taken, so that Ray does not report
                # them again as unhandled errors at exit.
                ready, _ = ray.wait(calls, num_returns=len(calls), timeout=RANK_DEATH_WAIT_S)
                dead = []
                for rank, call in enumerate(calls):
                    if call not in ready:
                        continue
                    try:
                        ray.get(call)
                    except RayActorError as died:
                        dead.append((rank, died))
                    except Exception:
                        continue
                if dead:
                    rank, died = dead[0]
                    raise LearnerRankDied(rank, method, died) from exc
                raise
        return ray.get(calls)

    def train(self, rollouts: list[Rollout], iteration: int, chunk_size: int | None = None) -> dict:
        """One iteration of updates on `rollouts`, put into the object store here and
        prepared `chunk_size` at a time (default: all at once); the iteration's metrics."""
        stored = store_rollouts(rollouts, iteration, chunk_size or len(rollouts))
        return self.train_from(stored, iteration, len(rollouts))

    def train_from(
        self, source, iteration: int, count: int, check: Callable[[], None] | None = None
    ) -> dict:
        """One iteration of updates on the `count` stored rollouts of `iteration`
        (`engines.rollout.StoredRollout`): `source` is their list, or the replay queue
        actor that hands them out as they are played (`LearnerRank.train`). `check()`
        is called every second while the ranks work (it raises to give up: the rollouts'
        producer failed). The iteration's metrics."""
        calls = [rank.train.remote(source, iteration, count) for rank in self.ranks]
        return self._wait(calls, "train", check)[0]

    def sync_weights(self, pool, version: int, transport: str | None = None) -> dict:
        """Send the policy's weights to every engine of `pool` (an `InferencePool`), tagged
        `version`, by `transport` (default: the configured one). Returns the seconds it
        took (`sync_s`), of which the engines spent `engine_load_s` loading them.

        Either way a copy of the weights stays in the object store, owned by rank 0, for
        engines that restart before the next sync (`InferencePool.keep_weights`). Under
        `distributed`, if an engine restarted since the weight group was formed, every
        member leaves it and joins a new one first."""
        started = time.perf_counter()
        if (transport or self.config.transport) == "object_store":
            [reference] = self._all("weights_to_object_store")[0]
            load_s = pool.update_weights(reference, version)
        else:
            if self._weight_group is None or not pool.in_weight_group(self._weight_group):
                self._open_weight_group(pool)
            receiving = pool.receive_weights(self._buckets, version)
            sending = [rank.broadcast_weights.remote() for rank in self.ranks]
            load_s = max(ray.get(receiving))
            [copy] = self._wait(sending, "broadcast_weights")[0]
            pool.keep_weights(copy, version)
        return {"sync_s": time.perf_counter() - started, "engine_load_s": load_s}

    def _open_weight_group(self, pool) -> None:
        """Form the weight group, rank 0 and `pool`'s engines, on a fresh port; members of
        the one before leave it."""
        if self._buckets is None:
            self._buckets = self._all("weight_layout")[0]
        world_size = 1 + pool.weight_group_size()
        [(host, port)] = self._wait([self.ranks[0].host_weight_group.remote(world_size)], "setup")
        joining = pool.open_weight_group(host, port, 1, world_size)
        self._wait(
            [rank.open_weight_group.remote(host, port, world_size) for rank in self.ranks],
            "open_weight_group",
        )
        ray.get(joining)
        self._weight_group = (host, port)

    def save_checkpoint(self, root: str, iteration: int, state: dict, keep: int = 2) -> Path:
        """Checkpoint everything after `iteration`, with the loop's `state` (data position
        and the like); complete or invisible (`learner.checkpoint`)."""
        partial = checkpoint.partial_dir(root, iteration)
        self._all("save_checkpoint", str(partial))
        return checkpoint.commit(root, iteration, {**state, "iteration": iteration}, keep)

    def load_checkpoint(self, path: str | Path) -> dict:
        """Restore every rank from a complete checkpoint folder; the loop's state."""
        state = checkpoint.read_state(path)
        self._all("load_checkpoint", str(path))
        return state

    def export_policy(self, directory: str | Path) -> None:
        """The policy in Hugging Face format, loadable by transformers and vLLM."""
        self._all("export_policy", str(directory))

    def parameters(self) -> list[dict]:
        """Each rank's view of the full policy and value parameters."""
        return self._all("parameters")

    def shutdown(self) -> None:
        """Kill the ranks and free their placement; returns once their names are free
        (a new group takes the same ones)."""
        for rank in self.ranks:
            ray.kill(rank, no_restart=True)
        names = [f"learner-{rank}" for rank in range(len(self.ranks))]
        self.ranks.clear()
        remove_placement_group(self.placement)
        deadline = time.monotonic() + RANK_DEATH_WAIT_S
        while time.monotonic() < deadline and any(map(_named_actor_alive, names)):
            time.sleep(0.1)


def _named_actor_alive(name: str) -> bool:
    """Whether this job has a live actor named `name`."""
    try:
        ray.get_actor(name)
    except ValueError:
        return False
    return True
