"""Surviving faults in the real training app: actors killed mid-run (the `chaos`
config), a learner rank that dies (the group relaunched from the last checkpoint by the
run itself; or, with no relaunch left, the run stopped and resumed from the checkpoint it
names)."""

import json

import pyarrow.parquet as pq
import pytest
from fixtures import code_contests_row, write_code_contests_shards
from train_app import launch_train, small_run_overrides, train_small

from problems.stream import ProblemStream
from problems.toy import generate_toy

SMALL = (
    "+experiment=sync",
    "trainer.rollouts_per_iteration=16",
    "dialog.sampling.max_new_tokens=32",
    "eval.every=0",
    "eval.problems=4",
    "eval.rollouts=1",
    "run.report=false",
)


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _expected_problems(iterations: int, per_iteration: int) -> list[list[str]]:
    """Each iteration's problems in an uninterrupted run (the default toy data, seed 0)."""
    stream = ProblemStream(generate_toy("train", 5000, seed=0), seed=0)
    return [[p.name for p in stream.take(per_iteration)] for _ in range(iterations)]


@pytest.mark.slow
def test_training_through_chaos_loses_nothing(quick_tiny_model, tmp_path):
    # Small chunks and early kills: the episodes are being played when an actor dies.
    done = train_small(
        quick_tiny_model,
        tmp_path,
        *SMALL,
        "trainer.rollouts_per_iteration=32",
        "actors.chunk_size=4",
        "actors.num_sandbox=1",
        "chaos.enabled=true",
        "chaos.window_s=0.5",
        "chaos.targets=[inference,sandbox]",
    )
    assert done.stdout.count("chaos: killed") == 2, done.stdout
    lines = _metrics(tmp_path)
    assert [m["iteration"] for m in lines] == [1, 2]
    assert lines[-1]["chaos_kills"] == 2
    # Ray restarted every actor chaos killed, and the counts say so.
    assert lines[-1]["restarts_inference"] + lines[-1]["restarts_sandbox"] == 2
    expected = _expected_problems(2, 32)
    for iteration, metrics in enumerate(lines, start=1):
        assert metrics["rollouts"] == 32
        table = pq.read_table(tmp_path / "rollouts" / f"iter-{iteration:06d}.parquet")
        # Exactly the iteration's problems, each once: nothing lost, nothing twice.
        assert table.column("problem").to_pylist() == expected[iteration - 1]
        assert all(row["turns"] for row in table.to_pylist())


def test_a_learner_rank_lost_relaunches_the_group_from_the_last_checkpoint(
    quick_tiny_model, tmp_path
):
    # A rank killed in iteration 2 and another in iteration 3: each time the group starts
    # again from the checkpoint of the iteration before, and the run goes on by itself.
    done = train_small(
        quick_tiny_model,
        tmp_path,
        *SMALL,
        "trainer.iterations=3",
        "run.checkpoint_every=1",
        "learner.transport=distributed",
        "chaos.enabled=true",
        "chaos.first_iteration=2",
        "chaos.window_s=0",
        "chaos.targets=[learner]",
    )
    relaunches = [line for line in done.stdout.splitlines() if "relaunching the learner" in line]
    assert len(relaunches) == 2, done.stdout
    assert "checkpoints/iter-000001 (relaunch 1 of run.max_restarts=3)" in relaunches[0]
    assert "checkpoints/iter-000002 (relaunch 2 of run.max_restarts=3)" in relaunches[1]
    lines = _metrics(tmp_path)
    assert [m["iteration"] for m in lines] == [1, 2, 3]  # no gap, no duplicate
    expected = _expected_problems(3, 16)
    for iteration, metrics in enumerate(lines, start=1):
        assert metrics["rollouts"] == 16
        # Played again with the checkpoint's weights, by engines synced to them.
        assert metrics["log_ratio_max_first_update"] < 1e-4, metrics
        table = pq.read_table(tmp_path / "rollouts" / f"iter-{iteration:06d}.parquet")
        assert table.column("problem").to_pylist() == expected[iteration - 1]


@pytest.mark.slow
def test_a_dead_learner_rank_is_named_and_the_run_resumes(quick_tiny_model, tmp_path):
    died = launch_train(
        *small_run_overrides(quick_tiny_model, tmp_path),
        *SMALL,
        "trainer.iterations=3",
        "run.checkpoint_every=1",
        "run.max_restarts=0",
        "chaos.enabled=true",
        "chaos.first_iteration=2",
        "chaos.window_s=0",
        "chaos.targets=[learner]",
    )
    assert died.returncode == 1, died.stderr[-3000:]
    message = died.stderr.strip().splitlines()[-1]
    assert "learner rank" in message and "(actor learner-" in message, message
    assert str(tmp_path / "checkpoints" / "iter-000001") in message, message
    assert "run.resume=true" in message and "Traceback" not in died.stderr
    assert [m["iteration"] for m in _metrics(tmp_path)] == [1]

    train_small(quick_tiny_model, tmp_path, *SMALL, "trainer.iterations=3", "run.resume=true")
    lines = _metrics(tmp_path)
    assert [m["iteration"] for m in lines] == [1, 2, 3]  # no gap, no duplicate
    expected = _expected_problems(3, 16)
    for iteration in (1, 2, 3):
        table = pq.read_table(tmp_path / "rollouts" / f"iter-{iteration:06d}.parquet")
        assert table.column("problem").to_pylist() == expected[iteration - 1]


@pytest.mark.slow
def test_unparseable_rows_and_prompts_too_long_are_skipped_and_counted(quick_tiny_model, tmp_path):
    rows = [code_contests_row(f"good_{i}") for i in range(8)]
    rows.insert(3, {**code_contests_row("no_name"), "name": None})
    rows.insert(5, code_contests_row("null_tests", private_tests=None))
    # Statements whose prompt leaves no room for a reply in the 1024-token dialogs.
    long_statement = "Print the sum of two integers, and read the story first: " + (
        "once upon a time a very long statement went on and on. " * 120
    )
    rows.insert(1, code_contests_row("long_one", description=long_statement))
    rows.append(code_contests_row("long_two", description=long_statement))
    write_code_contests_shards(
        tmp_path / "data",
        {
            "train-00000-of-00001.parquet": rows,
            "valid-00000-of-00001.parquet": [
                code_contests_row("valid_one"),
                code_contests_row("valid_long", description=long_statement),
            ],
        },
    )
    done = train_small(
        quick_tiny_model,
        tmp_path / "run",
        *SMALL,
        "data=code_contests",
        f"data.path={tmp_path / 'data'}",
        "trainer.iterations=1",
        "trainer.rollouts_per_iteration=8",
    )
    assert (
        "code_contests train: 8 problems, 2 rows skipped (malformed: 2), 2 dropped (prompt "
        "too long: no room for a 32-token reply in dialog.max_model_len=1024)"
    ) in done.stdout
    # An evaluation keeps such a problem: it counts as unsolved.
    assert "code_contests valid: 2 problems, 1 unsolvable (prompt too long" in done.stdout
    [metrics] = _metrics(tmp_path / "run")
    assert metrics["rollouts"] == 8 and metrics["rollouts_without_reply"] == 0
    table = pq.read_table(tmp_path / "run" / "rollouts" / "iter-000001.parquet")
    assert not {"long_one", "long_two"} & set(table.column("problem").to_pylist())


def test_an_unknown_chaos_target_is_named(tmp_path):
    done = launch_train(f"run.dir={tmp_path}", "chaos.targets=[inference,engines]", timeout=120)
    assert done.returncode == 2
    assert "chaos.targets: ['engines']" in done.stderr and "Traceback" not in done.stderr
