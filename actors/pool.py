"""Running tasks on Ray actors that Ray restarts: every task gets exactly one result
(`run_on_actors`), and every actor answers a question (`ask_every`).

Shared by the sandbox pool (`actors.sandbox_pool`) and the inference pool
(`actors.inference`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

logger = logging.getLogger("actors")
FIRST_BACKOFF_S = 1.0
"""How long to wait before probing again an actor that refused a probe (it restarts);
doubles while it keeps refusing."""
MAX_BACKOFF_S = 30.0
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class PoolStats:
    """What went wrong, and was mended, while the pool ran jobs."""

    actor_failures: int = 0
    """Task attempts lost because their actor died (each such task was re-submitted)."""
    abandoned_jobs: int = 0
    """Tasks given up on because they lost `max_attempts` actors (jobs: `runtime_error`)."""
    hung_actors: int = 0
    """Actors killed for running a task past its deadline (`HangWatch`), to be restarted."""


@dataclass
class HangWatch:
    """When a task has been in flight so long that its actor is taken for hung (a stopped
    process, a deadlocked engine: Ray sees it alive) and killed, to be restarted and the
    task replayed: `factor` times the longest a task took to finish so far, at least
    `min_s`; `first_s` before any has finished (engines compile and warm up on their
    first task)."""

    factor: float
    min_s: float
    first_s: float
    longest_s: float = 0.0
    """The longest a task took so far, submitted to finished (queueing in the actor
    included, as in the deadline)."""

    def deadline_s(self) -> float:
        if not self.longest_s:
            return max(self.first_s, self.min_s)
        return max(self.min_s, self.factor * self.longest_s)

    def finished(self, seconds: float) -> None:
        self.longest_s = max(self.longest_s, seconds)


def run_on_actors(
    actors: list,
    tasks: Sequence[T],
    submit: Callable[[object, T], ray.ObjectRef],
    probe: Callable[[object], ray.ObjectRef],
    max_in_flight: int,
    max_attempts: int,
    stats: PoolStats,
    abandon: Callable[[int, int], R],
    on_done: Callable[[int, R], None] | None = None,
    hang: HangWatch | None = None,
) -> list[R]:
    """Each task's result, in order, from actors that Ray restarts when they die.

    Tasks go to the least-loaded actor, at most `max_in_flight` at once. A task whose
    actor died is submitted again, at most `max_attempts` times in all; then
    `abandon(task index, attempts)` gives its result. Every task gets exactly one;
    `on_done(task index, result)` is called as each gets it.

    An actor whose task failed takes no task until `probe(actor)` (a cheap call)
    answers: Ray refuses calls while it restarts the actor (an engine loads for tens of
    seconds), and a refused probe, sent again after a backoff, costs no task an attempt.
    An actor dead for good answers its probe with that: its tasks then fail and count.

    With `hang`, an actor with a task in flight past `hang.deadline_s()` is killed (Ray
    restarts it), which fails its tasks: they are submitted again as above.
    """
    results: list[R | None] = [None] * len(tasks)
    attempts = [0] * len(tasks)
    waiting = deque(range(len(tasks)))
    in_flight: dict[ray.ObjectRef, tuple[int, int]] = {}
    sent_at: dict[ray.ObjectRef, float] = {}
    load = [0] * len(actors)
    down: dict[int, float] = {}
    """Actors that take no task until a probe answers -> when to send the next probe."""
    probes: dict[ray.ObjectRef, int] = {}
    backoff = [0.0] * len(actors)
    while waiting or in_flight:
        now = time.monotonic()
        probed = set(probes.values())
        for actor, due in down.items():
            if due <= now and actor not in probed:
                probes[probe(actors[actor])] = actor
        up = [actor for actor in range(len(actors)) if actor not in down]
        while waiting and up and len(in_flight) < max_in_flight:
            actor = min(up, key=load.__getitem__)
            index = waiting.popleft()
            load[actor] += 1
            attempts[index] += 1
            ref = submit(actors[actor], tasks[index])
            in_flight[ref] = (index, actor)
            sent_at[ref] = time.monotonic()
        unsent = [due for actor, due in down.items() if actor not in probes.values()]
        wake = list(unsent)
        if hang is not None and sent_at:
            hung = _kill_hung(actors, in_flight, sent_at, hang.deadline_s(), down, now)
            stats.hung_actors += hung
            wake.append(min(sent_at.values()) + hang.deadline_s())
        timeout = max(0.0, min(wake) - now) if wake else None
        if not in_flight and not probes:
            time.sleep(timeout or 0.0)
            continue
        done, _ = ray.wait([*in_flight, *probes], num_returns=1, timeout=timeout)
        if not done:
            continue
        [ref] = done
        if ref in probes:
            actor = probes.pop(ref)
            try:
                ray.get(ref)
            except ActorUnavailableError:
                backoff[actor] = min(MAX_BACKOFF_S, max(FIRST_BACKOFF_S, 2 * backoff[actor]))
                down[actor] = time.monotonic() + backoff[actor]
                continue
            except RayActorError:
                pass  # dead for good: its tasks fail, and count
            del down[actor]
            backoff[actor] = 0.0
            continue
        index, actor = in_flight.pop(ref)
        took_s = time.monotonic() - sent_at.pop(ref)
        load[actor] -= 1
        try:
            result = ray.get(ref)
            if hang is not None:
                hang.finished(took_s)
        except (RayActorError, ActorUnavailableError) as exc:
            stats.actor_failures += 1
            down.setdefault(actor, time.monotonic())
            if attempts[index] < max_attempts:
                logger.warning(
                    "actor %d died on task %d (attempt %d of %d), re-submitting: %s",
                    actor,
                    index,
                    attempts[index],
                    max_attempts,
                    type(exc).__name__,
                )
                waiting.appendleft(index)
                continue
            result = abandon(index, attempts[index])
        assert results[index] is None, f"task {index} got two results"
        results[index] = result
        if on_done is not None:
            on_done(index, result)
    return results


def _kill_hung(actors, in_flight, sent_at, deadline_s, down, now) -> int:
    """Kill (for Ray to restart) each actor with a task in flight longer than
    `deadline_s`, unless it is down already (killed, restarting); how many."""
    hung = {actor for ref, (_, actor) in in_flight.items() if now - sent_at[ref] > deadline_s}
    hung -= set(down)
    for actor in sorted(hung):
        logger.warning("actor %d ran a task past its %.0f s deadline: killed", actor, deadline_s)
        ray.kill(actors[actor], no_restart=False)
        down[actor] = now + FIRST_BACKOFF_S
    return len(hung)


def ask_every(actors: list, call: Callable[[object], ray.ObjectRef], timeout_s: float) -> list:
    """`call(actor)`'s answer from every actor, in order, waiting out restarts: a call
    Ray refuses while it restarts an actor is sent again after a backoff. An actor dead
    for good raises its `RayActorError`; one still without an answer after `timeout_s`,
    a `TimeoutError`."""
    deadline = time.monotonic() + timeout_s
    calls = [call(actor) for actor in actors]
    answers = []
    for index, actor in enumerate(actors):
        backoff = FIRST_BACKOFF_S
        while True:
            left = deadline - time.monotonic()
            try:
                answers.append(ray.get(calls[index], timeout=max(0.0, left)))
                break
            except ActorUnavailableError:
                if left < backoff:
                    raise TimeoutError(
                        f"actor {index} of {len(actors)} refused calls for {timeout_s} s "
                        "(Ray could not restart it): check its logs (`ray logs`)"
                    ) from None
                time.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, 2 * backoff)
                calls[index] = call(actor)
            except GetTimeoutError:
                raise TimeoutError(
                    f"actor {index} of {len(actors)} did not answer within {timeout_s} s: "
                    "check its logs (`ray logs`)"
                ) from None
    return answers
