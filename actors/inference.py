"""Inference on Ray: `InferenceActor` (one engine playing episodes) and `InferencePool`.

`RolloutWorker` is the plain class: an engine (vLLM or transformers, by config), its
tokenizer, and where programs are judged: a shared `SandboxPool` of sandbox actors (the
training app), or a sandbox whose fork servers are children of the actor's process (tests
never run in the Ray worker itself). The pool splits a phase's problems into chunks over
its actors; Ray restarts an actor that dies, and the pool plays the lost chunk again,
elsewhere or there, so no dialog is lost. Every chunk carries the current weights'
version and a reference to a copy of them in the object store (whichever transport
brought them), so a restarted actor catches up before it plays; under the `distributed`
transport the learner forms the weight group anew before its next broadcast
(`in_weight_group`), and the restarted actor takes its place there again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from engines.backend import make_engine
from engines.generation import EngineConfig, ModelConfig
from engines.rollout import Rollout, StoredRollout, summarize
from engines.weight_broadcast import GROUP_TIMEOUT_S
from engines.weights import PackedWeights
from problems import Problem
from sandbox import Sandbox, SandboxConfig

from .dialog import DialogConfig, play_episodes
from .metrics import InferenceMetrics, count_restart
from .pool import HangWatch, PoolStats, ask_every, run_on_actors
from .sandbox_pool import SandboxPool
from .seeds import EpisodeSeeds

logger = logging.getLogger("actors")


@dataclasses.dataclass(frozen=True)
class ChunkPlace:
    """Where a chunk of episodes belongs: its phase's iteration, its index among the
    phase's chunks, its first episode, and the actor that keeps its rollouts in the
    object store (`keep(rollouts)` gives their references)."""

    iteration: int
    index: int
    first: int
    owner: str


def own_cores(engine: EngineConfig, index: int, count: int) -> EngineConfig:
    """The engine config of actor `index` of `count` on one host: on CPU, vLLM engines
    sharing a host each need their own cores (VLLM_CPU_OMP_THREADS_BIND), so `auto`
    becomes an equal share of this host's cores, in actor order."""
    if engine.backend != "vllm" or engine.device != "cpu" or engine.cpu_threads_bind != "auto":
        return engine
    if count == 1:
        return engine
    cores = os.cpu_count() or 1
    share = max(1, cores // count)
    first = (index * share) % cores
    bind = str(first) if share == 1 else f"{first}-{first + share - 1}"
    return dataclasses.replace(engine, cpu_threads_bind=bind)


class RolloutWorker:
    """Plays episodes with one engine; the plain class behind `InferenceActor`."""

    def __init__(
        self,
        model: ModelConfig,
        engine: EngineConfig,
        dialog: DialogConfig,
        sandbox: SandboxConfig,
        sandbox_actors: list[str] | None = None,
    ) -> None:
        """Programs are judged by the sandbox actors named `sandbox_actors` if given (by
        name, not handle: Ray restarts an actor from its arguments), else on fork servers
        of this process's own `Sandbox(sandbox)`."""
        from transformers import AutoTokenizer

        count_restart("inference")
        self.dialog = dialog
        self.engine = make_engine(engine, model)
        self.tokenizer = AutoTokenizer.from_pretrained(model.location())
        if sandbox_actors:
            self.sandbox = None
            self.judge = SandboxPool.by_name(sandbox_actors, sandbox.workers).run
        else:
            self.sandbox = Sandbox(sandbox)
            self.judge = self.sandbox.run_many
        self.metrics = InferenceMetrics()
        self._weight_group: tuple[str, int] | None = None

    def play(
        self,
        problems: list[Problem],
        seeds: EpisodeSeeds,
        weights: tuple[list, int] | None = None,
        dialog: DialogConfig | None = None,
    ) -> list[Rollout]:
        """One episode per problem, sampled with `seeds`, played by `dialog` (default: the
        actor's). `weights` is ([object ref of the serialized weights], version): loaded
        first if the engine is behind them (`catch_up`)."""
        self.catch_up(weights)
        started = time.monotonic()
        rollouts = play_episodes(
            problems, self.engine, self.judge, self.tokenizer, dialog or self.dialog, seeds
        )
        self.metrics.played(rollouts, started)
        return rollouts

    def play_to_store(
        self,
        problems: list[Problem],
        seeds: EpisodeSeeds,
        place: ChunkPlace,
        weights: tuple[list, int] | None = None,
        dialog: DialogConfig | None = None,
    ) -> list[StoredRollout]:
        """`play`, with the rollouts put into Ray's object store by the actor named
        `place.owner` (alive for the run: a rollout outlives the engine that played it,
        whose own objects would die with it); each one's summary and reference, as
        chunk `place` of its phase."""
        rollouts = self.play(problems, seeds, weights, dialog)
        references = ray.get(ray.get_actor(place.owner).keep.remote(rollouts))
        return [
            StoredRollout(
                summarize(
                    rollout, place.iteration, place.first + index, place.index, len(rollouts)
                ),
                reference,
            )
            for index, (rollout, reference) in enumerate(zip(rollouts, references, strict=True))
        ]

    def update_weights(self, payload: PackedWeights, version: int) -> float:
        """New weights (`engines.weights.serialize_weights`), tagged `version`; the seconds
        the engine took to load them."""
        return self.engine.update_weights(payload, version)

    def open_weight_group(self, host: str, port: int, first_rank: int, world_size: int) -> None:
        """Join the learner's torch.distributed weight group at `host:port`
        (`engines.weight_broadcast`), leaving the one it was in."""
        self.engine.open_weight_group(host, port, first_rank, world_size)
        self._weight_group = (host, port)

    def weight_group(self) -> tuple[str, int] | None:
        """The address of the weight group the engine is in; None if it is in none (it
        never joined one, or it restarted since)."""
        return self._weight_group

    def receive_weights(self, buckets: list, version: int) -> float:
        """Receive the learner's broadcast of new weights, tagged `version`; the seconds
        the engine took to load them."""
        return self.engine.receive_weights(buckets, version)

    def catch_up(self, weights: tuple[list, int] | None) -> None:
        """Load `weights`, ([object ref of the serialized weights], version), if the engine
        is behind them: it restarted since they were sent (it starts from the model's
        files, version 0). Never back to older ones: a chunk sent before a sync may be
        played after it."""
        if weights is None:
            return
        [reference], version = weights
        if self.engine.weight_version < version:
            self.engine.update_weights(ray.get(reference), version)

    def weight_version(self) -> int:
        return self.engine.weight_version

    def sequence_logprobs(self, token_ids: list[int]) -> list[float]:
        """The engine's log p(token_i | tokens before it), i >= 1 (for checks)."""
        return self.engine.sequence_logprobs(token_ids)

    def close(self) -> None:
        """Stop the fork servers of the worker's own sandbox, if it has one."""
        if self.sandbox is not None:
            self.sandbox.close()


InferenceActor = ray.remote(max_restarts=-1, max_task_retries=0)(RolloutWorker)
"""A `RolloutWorker` in its own Ray worker process, restarted by Ray if it dies."""


class InferencePool:
    """N inference actors playing a phase's episodes; rollouts come back in problem order.

    With `in_process`, one `RolloutWorker` in this process instead, without Ray (for
    `launch.evaluate`): the same chunks, seeds and dialogs, one chunk after another."""

    def __init__(
        self,
        model: ModelConfig,
        engine: EngineConfig,
        dialog: DialogConfig,
        sandbox: SandboxConfig,
        num_actors: int,
        chunk_size: int = 16,
        max_attempts: int = 3,
        actor_options: Callable[[int], dict] | None = None,
        sandbox_actors: list[str] | None = None,
        in_process: bool = False,
        hang: HangWatch | None = None,
    ) -> None:
        """`actor_options(index)` gives each actor's Ray options (resources, name, env);
        the actors judge programs on the sandbox actors named `sandbox_actors` if given,
        else each on its own fork servers. With `hang`, an actor whose chunk runs past
        its deadline is killed, restarted, and the chunk played again."""
        self.engine = engine
        self.chunk_size = chunk_size
        self.max_attempts = max_attempts
        self.hang = hang
        self.stats = PoolStats()
        self._weights: tuple[list, int] | None = None
        self.worker = None
        if in_process:
            if num_actors != 1 or actor_options is not None:
                raise ValueError("an in-process inference pool has one worker, no Ray options")
            self.worker = RolloutWorker(model, engine, dialog, sandbox, sandbox_actors)
            self.actors = []
            return
        self.actors = [
            InferenceActor.options(**(actor_options(index) if actor_options else {})).remote(
                model, own_cores(engine, index, num_actors), dialog, sandbox, sandbox_actors
            )
            for index in range(num_actors)
        ]

    def play(
        self,
        problems: Sequence[Problem],
        seeds: EpisodeSeeds,
        on_done: Callable[[int], None] | None = None,
        dialog: DialogConfig | None = None,
    ) -> list[Rollout]:
        """One rollout per problem, sampled with `seeds` (episode i: `seeds`' episode i,
        whichever actor plays it), by `dialog` (default: the pool's, e.g. evaluation
        sampling instead); `on_done(rollouts)` ticks as each chunk finishes."""
        chunks = self._chunks(problems)
        if self.worker is not None:
            played = []
            for first, chunk in chunks:
                played.extend(self.worker.play(chunk, seeds.from_episode(first), None, dialog))
                if on_done is not None:
                    on_done(len(chunk))
            return played
        played = self._on_actors(
            chunks,
            lambda actor, first, chunk: actor.play.remote(
                chunk, seeds.from_episode(first), self._weights, dialog
            ),
            None if on_done is None else lambda played: on_done(len(played)),
        )
        return [rollout for chunk in played for rollout in chunk]

    def play_to_store(
        self,
        problems: Sequence[Problem],
        seeds: EpisodeSeeds,
        iteration: int,
        owner: str,
        on_chunk: Callable[[list[StoredRollout]], None] | None = None,
        dialog: DialogConfig | None = None,
    ) -> list[StoredRollout]:
        """`play`, with the rollouts left in Ray's object store, kept there by the actor
        named `owner`: what comes back (and goes to `on_chunk` as each chunk finishes,
        once per chunk) is their summaries and references, as episodes of `iteration`, in
        problem order. The rollouts go from the actors to `owner`, never through here."""
        if self.worker is not None:
            raise ValueError("an in-process inference pool plays without Ray's object store")

        def submit(actor, first: int, chunk: list[Problem]):
            place = ChunkPlace(iteration, first // self.chunk_size, first, owner)
            return actor.play_to_store.remote(
                chunk, seeds.from_episode(first), place, self._weights, dialog
            )

        played = self._on_actors(self._chunks(problems), submit, on_chunk)
        return [stored for chunk in played for stored in chunk]

    def _chunks(self, problems: Sequence[Problem]) -> list[tuple[int, list[Problem]]]:
        """The phase's chunks: (first episode, its problems)."""
        return [
            (start, list(problems[start : start + self.chunk_size]))
            for start in range(0, len(problems), self.chunk_size)
        ]

    def _on_actors(self, chunks, submit, on_done) -> list[list]:
        """Each chunk's result from `submit(actor, first episode, problems)`, replayed on
        another actor (or the same, restarted) if its actor dies; `on_done(result)` as
        each chunk's comes."""

        def abandon(index: int, attempts: int):
            raise RuntimeError(
                f"chunk {index} of {len(chunks)} lost its inference actor {attempts} times; "
                "check the actors' logs (`ray logs`) for why they die"
            )

        return run_on_actors(
            self.actors,
            chunks,
            submit=lambda actor, chunk: submit(actor, *chunk),
            probe=lambda actor: actor.weight_version.remote(),
            max_in_flight=2 * len(self.actors),
            max_attempts=self.max_attempts,
            stats=self.stats,
            abandon=abandon,
            on_done=None if on_done is None else lambda _, result: on_done(result),
            hang=self.hang,
        )

    def update_weights(self, weights, version: int) -> float:
        """Send new weights to every actor: `weights` is the serialized payload
        (`engines.weights.serialize_weights`) or a Ray object reference to it (one object in
        the store, read by all). Returns the longest time an engine took to load them.

        An engine that died or is restarting (its node lost, say) is not waited for: it
        loads them from the copy the next chunk it plays carries (`keep_weights`)."""
        if self.worker is not None:
            return self.worker.update_weights(weights, version)
        reference = weights if isinstance(weights, ray.ObjectRef) else ray.put(weights)
        calls = [actor.update_weights.remote(reference, version) for actor in self.actors]
        self.keep_weights(reference, version)
        load_s = []
        for index, call in enumerate(calls):
            try:
                load_s.append(ray.get(call))
            except (RayActorError, ActorUnavailableError):
                logger.warning(
                    "engine %d missed weights %d: it catches up on its next chunk", index, version
                )
        return max(load_s, default=0.0)

    def keep_weights(self, reference: ray.ObjectRef, version: int) -> None:
        """What every chunk from now on carries for a restarted engine to catch up from:
        `reference` to the serialized weights `version` in the object store. The newest
        only: the reference held before is dropped (the object it names is freed once no
        chunk in flight holds it)."""
        # In a list, so that Ray passes the reference itself, not the bytes, to `play`.
        self._weights = ([reference], version)

    def weight_group_size(self) -> int:
        """Ranks the pool's engines take in a weight group (one per tensor-parallel worker)."""
        return len(self.actors) * self.engine.tensor_parallel_size

    def open_weight_group(self, host: str, port: int, first_rank: int, world_size: int) -> list:
        """Start joining the learner's weight group: engine ranks from `first_rank` on.
        Returns the calls' references (they finish once every member has joined)."""
        size = self.engine.tensor_parallel_size
        return [
            actor.open_weight_group.remote(host, port, first_rank + index * size, world_size)
            for index, actor in enumerate(self.actors)
        ]

    def in_weight_group(self, address: tuple[str, int]) -> bool:
        """Whether every engine is in the weight group at `address` (host, port): not if
        an actor restarted since it joined (a broadcast would wait for the member the group
        lost). Waits for actors that are restarting, at most `GROUP_TIMEOUT_S`."""
        places = ask_every(self.actors, lambda actor: actor.weight_group.remote(), GROUP_TIMEOUT_S)
        return all(place == address for place in places)

    def receive_weights(self, buckets: list, version: int) -> list:
        """Start receiving a broadcast of weights `version`; returns the calls' references
        (each gives the seconds its engine took to load the weights). Every engine must be
        in the group (`in_weight_group`); one restarted afterwards catches up from the copy
        the learner sends with the next chunks (`keep_weights`)."""
        return [actor.receive_weights.remote(buckets, version) for actor in self.actors]

    def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.close()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors.clear()
