"""The training app on a Ray cluster of several nodes (separate raylets on this machine,
`ray.cluster_utils.Cluster`): each kind of actor on the nodes of its role; whole nodes
lost mid-run (their raylets killed) and an engine that hangs (its process stopped), with
nothing lost."""

import json
import subprocess
import sys
import time

import pytest
from train_app import small_run_overrides

from launch.drills import lost_anything, stop_a_playing_engine
from problems.stream import ProblemStream
from problems.toy import generate_toy

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

ROLES = {"learner": "rlef_learner", "inference": "rlef_inference", "sandbox": "rlef_sandbox"}
ROLLOUTS = 32


def _start_cluster() -> tuple[Cluster, dict[str, list]]:
    """A head (the driver's node: no role) and nodes of each role: 1 learner, 2 inference,
    2 sandbox. Each inference node has room for both engines, each sandbox node for both
    sandbox actors: the survivors take a lost node's work."""
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        # The raylets publish their counters every second (cross_node_bytes reads them).
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "_system_config": {"metrics_report_interval_ms": 1000},
        },
    )
    shape = {"learner": (1, 2), "inference": (2, 2), "sandbox": (2, 1)}
    nodes = {
        role: [cluster.add_node(num_cpus=cpus, resources={ROLES[role]: 1}) for _ in range(count)]
        for role, (count, cpus) in shape.items()
    }
    cluster.wait_for_nodes()
    return cluster, nodes


def _wait_for(path, text: str, process, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        if process.poll() is not None:
            errors = (path.parent / "stderr.txt").read_text()[-3000:]
            raise AssertionError(f"the run ended before {text!r}: {errors}")
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} in {path} after {timeout_s} s")


def _node_of(nodes: list, node_id: str):
    [node] = [n for n in nodes if n.node_id == node_id]
    return node


def test_roles_place_the_actors_and_lost_nodes_and_a_hung_engine_lose_nothing(
    quick_tiny_model, tmp_path
):
    cluster, nodes = _start_cluster()
    try:
        command = [
            sys.executable,
            "-m",
            "launch.train",
            *small_run_overrides(quick_tiny_model, tmp_path),
            f"cluster.address={cluster.address}",
            *(f"cluster.{role}_resource={resource}" for role, resource in ROLES.items()),
            "+experiment=sync",
            "learner.num_ranks=1",
            "learner.cpus_per_rank=2",
            "actors.num_inference=2",
            "actors.cpus_per_inference=1",
            "actors.num_sandbox=2",
            "actors.cpus_per_sandbox=0.5",
            "actors.chunk_size=4",
            f"trainer.rollouts_per_iteration={ROLLOUTS}",
            "dialog.sampling.max_new_tokens=48",
            "eval.every=0",
            "eval.problems=4",
            "eval.rollouts=1",
            "run.report=false",
            "trainer.iterations=3",
            "actors.hang_factor=3",
            "actors.hang_min_s=5",
        ]
        # Into files: a pipe nobody reads while the run goes would fill and stop it.
        errors = (tmp_path / "stderr.txt").open("w+")
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, text=True)
        log = tmp_path / "train.log"
        _wait_for(log, "train: placed", run)
        placed = json.loads((tmp_path / "placement.json").read_text())
        for name, where in placed.items():
            role = name.rsplit("-", 1)[0]
            assert where["resources"] == [ROLES[role]], (name, where)
        # Iteration 1 is being played: the node of engine 0 goes, raylet and all.
        _wait_for(log, "before training", run)
        time.sleep(2)
        cluster.remove_node(
            _node_of(nodes["inference"], placed["inference-0"]["node_id"]), allow_graceful=False
        )
        # Iteration 2 is being played: the node of sandbox actor 0 goes.
        _wait_for(log, "iter    1", run)
        time.sleep(1)
        cluster.remove_node(
            _node_of(nodes["sandbox"], placed["sandbox-0"]["node_id"]), allow_graceful=False
        )
        # Iteration 3 is being played: an engine stops (as a deadlocked one would).
        _wait_for(log, "iter    2", run)
        stop_a_playing_engine()
        run.wait(timeout=900)
        assert run.returncode == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    finally:
        cluster.shutdown()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in lines] == [1, 2, 3]
    # The lost engine's chunks were redone in iteration 1 (its restart on the surviving
    # node is counted once it is up, which may be after the iteration's line).
    assert lines[0]["tasks_redone"] >= 1
    assert [m["engines_hung"] for m in lines] == [0, 0, 1]
    assert lines[2]["tasks_redone"] > lines[1]["tasks_redone"]
    # Node loss and hang: two engine restarts; the sandbox node: one sandbox restart.
    assert lines[2]["restarts_inference"] >= 2 and lines[2]["restarts_sandbox"] >= 1
    # Rollouts fetched by the learner from the engines' nodes, weights copied to them.
    assert all(m["cross_node_bytes"] > 0 for m in lines), lines
    stream = ProblemStream(generate_toy("train", 5000, seed=0), seed=0)
    expected = [[p.name for p in stream.take(ROLLOUTS)] for _ in range(3)]
    assert lost_anything(tmp_path, expected) == []


def test_the_cross_node_counter_is_read_from_the_prometheus_text():
    from launch.node_bytes import received_bytes

    text = (
        "# HELP ray_object_manager_bytes Number of bytes pushed or received by type\n"
        'ray_object_manager_bytes{Component="raylet",Type="PushedFromLocalPlasma"} 7.0\n'
        'ray_object_manager_bytes{Component="raylet",Type="Received",NodeAddress="a"} 5e+07\n'
        'ray_object_manager_received_chunks{Component="raylet"} 3.0\n'
    )
    assert received_bytes(text) == 5e7
    assert received_bytes("") == 0


def test_a_rollout_lost_or_repeated_is_found(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "rollouts").mkdir()
    played = {1: ["a", "b", "c"], 2: ["d", "d", "f"]}  # iteration 2 played `d` twice
    for iteration, names in played.items():
        table = pa.table({"problem": names})
        pq.write_table(table, tmp_path / "rollouts" / f"iter-{iteration:06d}.parquet")
    (tmp_path / "metrics.jsonl").write_text('{"iteration": 1}\n{"iteration": 2}\n')
    assert lost_anything(tmp_path, [["a", "b", "c"], ["d", "e", "f"]]) == [
        "iteration 2: 3 rollouts, not its 3 in the data order (1 out of place)"
    ]
    assert lost_anything(tmp_path, [["a", "b", "c"], ["d", "d", "f"]]) == []
    assert lost_anything(tmp_path, [["a", "b", "c"]] * 3)[0].startswith(
        "metrics.jsonl has iterations [1, 2], not 1..3"
    )


def test_the_rehearsal_refuses_an_unknown_drill_in_one_line(capsys):
    from launch.rehearse import main

    with pytest.raises(SystemExit) as refused:
        main(["--drills", "node,flood"])
    assert refused.value.code == 2
    assert "drills are a comma-separated list of node, hang, sandbox, learner" in (
        capsys.readouterr().err
    )
