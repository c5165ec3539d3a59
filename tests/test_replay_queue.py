"""The replay queue: exact counts, back-pressure, staleness, reading as items come,
references not copies."""

import asyncio

import numpy as np
import pytest

from actors.replay_queue import ReplayQueue


def run(coroutine):
    return asyncio.run(coroutine)


def test_get_returns_exactly_the_asked_count_oldest_first():
    async def scenario():
        queue = ReplayQueue(capacity=10, max_staleness=1)
        await queue.put(0, ["a", "b", "c"])
        await queue.put(0, ["d"])
        first = await queue.get(3, learner_version=0)
        return first, queue.stats()

    items, stats = run(scenario())
    assert items == ["a", "b", "c"]
    assert (stats.size, stats.put, stats.taken, stats.dropped_stale) == (1, 4, 3, 0)


def test_a_full_queue_makes_producers_wait_until_the_learner_takes():
    async def scenario():
        queue = ReplayQueue(capacity=2, max_staleness=1)
        producer = asyncio.create_task(queue.put(0, [1, 2, 3, 4]))
        await asyncio.sleep(0)  # let the producer fill the queue
        for _ in range(5):
            await asyncio.sleep(0)
        blocked = (queue.stats().size, producer.done())
        taken = await queue.get(2, learner_version=0)
        await asyncio.wait_for(producer, timeout=5)
        rest = await queue.get(2, learner_version=0)
        return blocked, taken, rest

    blocked, taken, rest = run(scenario())
    assert blocked == (2, False)  # full, and the producer is still waiting
    assert taken == [1, 2] and rest == [3, 4]


def test_the_learner_waits_for_enough_items():
    async def scenario():
        queue = ReplayQueue(capacity=4, max_staleness=0)
        learner = asyncio.create_task(queue.get(3, learner_version=0))
        await queue.put(0, ["x", "y"])
        for _ in range(5):
            await asyncio.sleep(0)
        waiting = not learner.done()
        await queue.put(0, ["z"])
        return waiting, await asyncio.wait_for(learner, timeout=5)

    waiting, items = run(scenario())
    assert waiting and items == ["x", "y", "z"]


def test_stale_rollouts_are_dropped_and_counted():
    async def scenario():
        queue = ReplayQueue(capacity=8, max_staleness=1)
        await queue.put(0, ["v0a", "v0b"])
        await queue.put(1, ["v1"])
        await queue.put(2, ["v2a", "v2b"])
        items = await queue.get(3, learner_version=2)  # version 0 is 2 behind: stale
        return items, queue.stats()

    items, stats = run(scenario())
    assert items == ["v1", "v2a", "v2b"]
    assert stats.dropped_stale == 2


def test_a_new_learner_version_frees_room_held_by_stale_items():
    async def scenario():
        queue = ReplayQueue(capacity=2, max_staleness=0)
        await queue.put(0, ["old1", "old2"])
        producer = asyncio.create_task(queue.put(1, ["new"]))
        for _ in range(5):
            await asyncio.sleep(0)
        blocked = not producer.done()
        await queue.set_learner_version(1)
        await asyncio.wait_for(producer, timeout=5)
        return blocked, await queue.get(1, learner_version=1), queue.stats()

    blocked, items, stats = run(scenario())
    assert blocked and items == ["new"] and stats.dropped_stale == 2


def test_every_reader_reads_an_iterations_items_in_the_same_order_as_they_come():
    async def scenario():
        queue = ReplayQueue(capacity=8, max_staleness=0)
        first_reader = asyncio.create_task(queue.read(1, 0, 3, learner_version=0))
        for _ in range(5):
            await asyncio.sleep(0)
        waited = not first_reader.done()
        await queue.put(0, ["a"])
        first = await asyncio.wait_for(first_reader, timeout=5)
        await queue.put(0, ["b", "c", "next-iteration"])
        rest = await queue.read(1, len(first), 3, learner_version=0)
        late_reader = await queue.read(1, 0, 3, learner_version=0)
        left = queue.stats().size
        await queue.set_learner_version(1)
        return waited, first, rest, late_reader, left, queue._read

    waited, first, rest, late_reader, left, kept = run(scenario())
    assert waited and first == ["a"] and rest == ["b", "c"]
    assert late_reader == ["a", "b", "c"]  # a rank that reads later sees the same items
    assert left == 1  # the next iteration's item stays queued
    assert kept == {}  # what was read for iteration 1 is forgotten once the learner is past it


def test_a_reset_drops_everything_frees_a_waiting_producer_and_sets_the_version_back():
    async def scenario():
        queue = ReplayQueue(capacity=2, max_staleness=0)
        await queue.put(3, ["a", "b"])
        await queue.read(4, 0, 1, learner_version=3)
        producer = asyncio.create_task(queue.put(3, ["c", "d"]))
        for _ in range(5):
            await asyncio.sleep(0)
        blocked = not producer.done()
        dropped = await queue.reset(learner_version=1)  # a learner back at a checkpoint
        await asyncio.wait_for(producer, timeout=5)
        await queue.reset(learner_version=1)
        await queue.put(1, ["replayed"])  # version 1 is no longer stale
        return blocked, dropped, await queue.read(4, 0, 1, learner_version=1)

    blocked, dropped, read = run(scenario())
    assert blocked and dropped == 2  # "b" and "c"; "a" had been read, "d" was waiting
    assert read == ["replayed"]  # iteration 4 is read afresh


def test_reading_from_outside_the_count_is_refused():
    with pytest.raises(ValueError, match="from 3 of 3"):
        run(ReplayQueue(capacity=2, max_staleness=0).read(1, 3, 3, 0))


def test_asking_for_more_than_the_capacity_is_refused():
    with pytest.raises(ValueError, match="capacity 2"):
        run(ReplayQueue(capacity=2, max_staleness=0).get(3, 0))


def test_on_ray_the_queue_holds_references_not_copies():
    ray = pytest.importorskip("ray")
    from actors.replay_queue import ReplayQueueActor

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        queue = ReplayQueueActor.remote(capacity=4, max_staleness=1)
        payload = ray.put(np.arange(1_000_000))
        ray.get(queue.put.remote(0, [payload]))
        [ref] = ray.get(queue.get.remote(1, 0))
        assert isinstance(ref, ray.ObjectRef) and ref == payload
        assert ray.get(ref)[-1] == 999_999
        assert ray.get(queue.stats.remote()).taken == 1
        ray.kill(queue)
    finally:
        if started:
            ray.shutdown()
