"""The learner group: K `LearnerRank` Ray actors in one placement group, and what the
training loop asks of them: train on an iteration's rollouts, send the new weights to
the inference engines, save and restore checkpoints, export the policy."""

from __future__ import annotations

import time
from pathlib import Path

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors.generation import ModelConfig
from actors.rollout import Rollout

from . import checkpoint
from .config import LearnerConfig
from .rank import LearnerRank

LearnerActor = ray.remote(max_restarts=0)(LearnerRank)
"""A `LearnerRank` in its own Ray worker process (a rank that dies ends the group)."""

PLACEMENT_TIMEOUT_S = 300


class LearnerGroup:
    """K DeepSpeed ranks, one Ray actor each, named `learner-<rank>`."""

    def __init__(self, config: LearnerConfig, model: ModelConfig) -> None:
        config.check()
        self.config = config
        gpus = 1 if config.device != "cpu" else 0
        bundle = {"CPU": config.cpus_per_rank, **({"GPU": gpus} if gpus else {})}
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
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.placement, placement_group_bundle_index=rank
                ),
            ).remote(config, model, rank, config.num_ranks)
            for rank in range(config.num_ranks)
        ]
        host, port = ray.get(self.ranks[0].address.remote())
        self._all("setup", host, port)
        self._weight_group_open = False
        self._buckets = None

    def _all(self, method: str, *args) -> list:
        """Call `method` on every rank at once (collectives need them all) and wait."""
        return ray.get([getattr(rank, method).remote(*args) for rank in self.ranks])

    def train(self, rollouts: list[Rollout], iteration: int) -> dict:
        """One iteration of updates on `rollouts`; the iteration's metrics."""
        reference = ray.put(rollouts)
        return self._all("train", reference, iteration)[0]

    def sync_weights(self, pool, version: int, transport: str | None = None) -> dict:
        """Send the policy's weights to every engine of `pool` (an `InferencePool`), tagged
        `version`, by `transport` (default: the configured one). Returns the seconds it
        took (`sync_s`), of which the engines spent `engine_load_s` loading them."""
        started = time.perf_counter()
        if (transport or self.config.transport) == "object_store":
            [reference] = self._all("weights_to_object_store")[0]
            load_s = pool.update_weights(reference, version)
        else:
            if not self._weight_group_open:
                self._open_weight_group(pool)
            receiving = pool.receive_weights(self._buckets, version)
            sending = [rank.broadcast_weights.remote() for rank in self.ranks]
            load_s = max(ray.get(receiving))
            ray.get(sending)
        return {"sync_s": time.perf_counter() - started, "engine_load_s": load_s}

    def _open_weight_group(self, pool) -> None:
        self._buckets = self._all("weight_layout")[0]
        world_size = 1 + pool.weight_group_size()
        host, port = ray.get(self.ranks[0].host_weight_group.remote(world_size))
        joining = pool.open_weight_group(host, port, 1, world_size)
        ray.get(
            [rank.open_weight_group.remote(host, port, world_size) for rank in self.ranks] + joining
        )
        self._weight_group_open = True

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
        for rank in self.ranks:
            ray.kill(rank, no_restart=True)
        self.ranks.clear()
        remove_placement_group(self.placement)
