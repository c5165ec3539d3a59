"""The sandbox on Ray: actors die, jobs are re-run, every job gets exactly one judgement;
an actor that hangs is killed past its deadline and its task replayed."""

import pytest
from fixtures import stdio_job

ray = pytest.importorskip("ray")

from actors.sandbox_pool import SandboxActor, SandboxPool  # noqa: E402
from sandbox import SandboxConfig  # noqa: E402


def _numbered_jobs(count, seconds=0.2, time_limit_s=2.0):
    program = f"import time\ntime.sleep({seconds})\nprint(int(input()) * 2)"
    return [
        stdio_job(program, [str(i)], [str(2 * i)], time_limit_s=time_limit_s) for i in range(count)
    ]


def test_actor_is_a_thin_wrapper_over_sandbox(local_ray):
    actor = SandboxActor.remote(SandboxConfig())
    judgement = ray.get(actor.run.remote(_numbered_jobs(1, seconds=0)[0]))
    assert judgement.passed
    ray.kill(actor)


def test_actor_killed_mid_batch_every_job_gets_exactly_one_result(local_ray):
    pool = SandboxPool.start(SandboxConfig(), num_actors=2)
    jobs = _numbered_jobs(8)
    # Job 0, submitted first, goes to actor 0 and runs for 5 s: the kill at the first
    # result (a 0.2 s job on actor 1) lands while it runs, however loaded the machine.
    # (A kill between two tasks loses nothing: Ray holds the next one for the restart.)
    jobs[0] = _numbered_jobs(1, seconds=5.0, time_limit_s=10.0)[0]
    killed = []

    def kill_actor_zero_once():
        if not killed:
            killed.append(True)
            ray.kill(pool.actors[0], no_restart=False)

    try:
        judgements = pool.run(jobs, on_done=kill_actor_zero_once)
        assert len(judgements) == len(jobs)
        assert all(j.passed for j in judgements)
        assert [j.tests[0].stdout for j in judgements] == [f"{2 * i}\n" for i in range(8)]
        assert pool.stats.actor_failures >= 1
        assert pool.stats.abandoned_jobs == 0
        # The restarted actor works again.
        assert all(j.passed for j in pool.run(_numbered_jobs(4, seconds=0)))
    finally:
        pool.shutdown()


def test_a_job_that_keeps_killing_its_actor_is_judged_runtime_error(local_ray):
    # Without namespaces a program can reach its fork server's parent: the actor itself.
    killer = """
    import os, signal
    zygote = os.getppid()
    actor = int(open(f"/proc/{zygote}/stat").read().rsplit(")", 1)[1].split()[1])
    os.kill(actor, signal.SIGKILL)
    """
    pool = SandboxPool.start(SandboxConfig(isolation="none"), num_actors=1, max_attempts=2)
    try:
        jobs = [*_numbered_jobs(2, seconds=0), stdio_job(killer, ["1"], ["1"])]
        judgements = pool.run(jobs)
        assert [j.passed for j in judgements] == [True, True, False]
        assert judgements[2].tests[0].verdict == "runtime_error"
        assert "died 2 times" in judgements[2].tests[0].stderr
        assert pool.stats.abandoned_jobs == 1
        assert pool.stats.actor_failures == 2
    finally:
        pool.shutdown()


@ray.remote(max_restarts=-1, max_task_retries=0)
class _SlowToRestart:
    """Starts at once, but takes 8 s to start again after a death (as an engine loads)."""

    def __init__(self) -> None:
        import time

        if ray.get_runtime_context().was_current_actor_reconstructed:
            time.sleep(8)

    def double(self, number: int) -> int:
        return 2 * number


def test_tasks_refused_while_their_actor_restarts_are_not_lost_attempts(local_ray):
    from actors.pool import PoolStats, run_on_actors

    actor = _SlowToRestart.remote()
    ray.get(actor.double.remote(0))
    stats = PoolStats()
    killed = []

    def kill_once(_task, _result):
        if not killed:
            killed.append(True)
            ray.kill(actor, no_restart=False)

    # Ray refuses calls to a restarting actor (ActorUnavailableError, after ~2 s each):
    # counted as attempts, 2 refusals abandoned a task long before the 8 s restart ended.
    results = run_on_actors(
        [actor],
        list(range(4)),
        submit=lambda a, number: a.double.remote(number),
        probe=lambda a: a.double.remote(0),
        max_in_flight=1,
        max_attempts=2,
        stats=stats,
        abandon=lambda index, attempts: pytest.fail(f"task {index} abandoned after {attempts}"),
        on_done=kill_once,
    )
    assert results == [0, 2, 4, 6]
    assert stats.actor_failures == 1  # the task the kill took; the refusals cost nothing
    ray.kill(actor, no_restart=True)


@ray.remote(max_restarts=-1, max_task_retries=0)
class _Doubler:
    def pid(self) -> int:
        import os

        return os.getpid()

    def double(self, number: int) -> int:
        import time

        time.sleep(0.1)
        return 2 * number


def test_an_actor_stopped_mid_task_is_killed_past_the_deadline_and_its_task_replayed(local_ray):
    import os
    import signal

    from actors.pool import HangWatch, PoolStats, run_on_actors

    actor = _Doubler.remote()
    pid = ray.get(actor.pid.remote())
    stats, hang = PoolStats(), HangWatch(factor=3.0, min_s=1.0, first_s=30.0)
    stopped = []

    def stop_after_the_first(index, _result):
        if not stopped:  # the process freezes (SIGSTOP): Ray still sees it alive
            stopped.append(index)
            os.kill(pid, signal.SIGSTOP)

    results = run_on_actors(
        [actor],
        list(range(4)),
        submit=lambda a, number: a.double.remote(number),
        probe=lambda a: a.pid.remote(),
        max_in_flight=1,
        max_attempts=2,
        stats=stats,
        abandon=lambda index, attempts: pytest.fail(f"task {index} abandoned after {attempts}"),
        on_done=stop_after_the_first,
        hang=hang,
    )
    assert results == [0, 2, 4, 6]
    assert (stats.hung_actors, stats.actor_failures) == (1, 1)
    # The deadline followed the tasks' own time: 3 x the first one's, at least 1 s.
    assert hang.deadline_s() == max(1.0, 3 * hang.longest_s) < 5
    assert ray.get(actor.pid.remote()) != pid  # a new process
    ray.kill(actor, no_restart=True)


def test_the_hang_deadline_covers_the_first_task_then_follows_the_slowest():
    from actors.pool import HangWatch

    hang = HangWatch(factor=5.0, min_s=60.0, first_s=1800.0)
    assert hang.deadline_s() == 1800.0  # engines start and warm up on their first chunk
    hang.finished(4.0)
    assert hang.deadline_s() == 60.0  # at least min_s
    hang.finished(30.0)
    hang.finished(10.0)
    assert hang.deadline_s() == 150.0  # 5 x the slowest so far
