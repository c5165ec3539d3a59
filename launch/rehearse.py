"""The paper's shape on a Ray cluster of several nodes on this machine, with faults at
node level: `make rehearse` (launch/rehearse.sh).

Starts raylets here as `ray start` starts them on a cluster, token authentication on: a
head with no role and no CPUs (the job's driver, the replay queue, the rollout store), a
learner node, two inference nodes (each with room for both engines) and two sandbox nodes
(each with room for both sandbox actors), marked by their role's resource. Submits
`+experiment=rehearsal` with launch/submit.sh (`ray job submit`), and while it trains deals
the drills, one per iteration from the first:

  node     an inference node is lost: its raylet and all it started killed, mid-iteration
  hang     an engine playing a chunk is stopped (SIGSTOP)
  sandbox  a sandbox node is lost
  learner  learner rank 1 is killed

Then checks that nothing was lost (every iteration has exactly its rollouts, once each, in
the data order of an uninterrupted run) and that each drill was survived as it should be,
prints where each iteration's time went, and stops everything it started.

  python -m launch.rehearse [--drills node,hang,sandbox,learner | --drills none] [OVERRIDES]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from launch.config import USAGE_ERRORS, compose_config
from launch.drills import (
    DrillError,
    kill_node_of,
    kill_process,
    lost_anything,
    playing_engine,
    raylet_of,
    raylets_in,
    stop_a_playing_engine,
)
from launch.placement import PLACEMENT_FILE
from launch.train import training_problems  # also registers the config's resolvers
from launch.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DRILLS = ("node", "hang", "sandbox", "learner")
NODES = (
    ("learner", "rlef_learner", 1, 2),
    ("inference", "rlef_inference", 2, 2),
    ("sandbox", "rlef_sandbox", 2, 1),
)
"""(role, resource, nodes, CPUs each): what `+experiment=rehearsal` asks of the cluster,
with room on the survivors for a lost node's actors."""
CLIENT_VARIABLES = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
"""Variables of the caller's shell that would point Ray elsewhere."""
JOB_TIMEOUT_S = 1080
"""The rehearsal takes about 10 minutes on 2 cores; past this it has hung."""
POLL_S = 0.5
OBJECT_STORE_BYTES = 512 * 2**20
"""Each node's object store (weights and rollouts of the tiny model take a few MB)."""


class RehearsalError(RuntimeError):
    """The rehearsal could not go on; the message says why."""


@dataclass
class Cluster:
    """The raylets started here."""

    temp_dir: str
    token_path: Path
    env: dict[str, str]
    gcs: str
    dashboard: str
    logs: list[Path] = field(default_factory=list)


def free_ports(count: int) -> list[int]:
    """`count` TCP ports free on 127.0.0.1 now (for a Ray node's many listeners)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _ray_start(cluster: Cluster, name: str, arguments: list[str]) -> None:
    log = Path(cluster.temp_dir) / f"ray_start_{name}.log"
    cluster.logs.append(log)
    with log.open("w") as out:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ray"), "start", *arguments],
            env=cluster.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=180,
        )
    if done.returncode:
        raise RehearsalError(f"ray start ({name}) exited {done.returncode}: see {log}")


def _node_ports() -> list[str]:
    manager, objects, metrics, listen, grpc, runtime_env = free_ports(6)
    return [
        f"--node-manager-port={manager}", f"--object-manager-port={objects}",
        f"--metrics-export-port={metrics}", f"--dashboard-agent-listen-port={listen}",
        f"--dashboard-agent-grpc-port={grpc}", f"--runtime-env-agent-port={runtime_env}",
        "--min-worker-port=0", "--max-worker-port=0", "--disable-usage-stats",
        # Six object stores share this machine's memory: Ray's default is 30% of it each.
        f"--object-store-memory={OBJECT_STORE_BYTES}",
    ]  # fmt: skip


def start_cluster(say) -> Cluster:
    """A head and the role nodes of `NODES`, token authentication on."""
    temp_dir = tempfile.mkdtemp(prefix="rlef-rh-")  # short: Ray's socket paths must fit
    token_path = Path(temp_dir) / "auth_token"
    token_path.write_text(secrets.token_hex(32))
    token_path.chmod(0o600)
    env = {key: value for key, value in os.environ.items() if key not in CLIENT_VARIABLES}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token_path),
        # Each raylet publishes its counters (cross_node_bytes) every second, not every 10.
        RAY_metrics_report_interval_ms="1000",
    )
    gcs, dashboard, client = free_ports(3)
    cluster = Cluster(
        temp_dir, token_path, env, f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}"
    )
    say(f"rehearse: starting a head on {cluster.gcs} (dashboard {cluster.dashboard})")
    _ray_start(
        cluster,
        "head",
        [
            "--head", f"--port={gcs}", "--num-cpus=0", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
            f"--temp-dir={temp_dir}", *_node_ports(),
        ],
    )  # fmt: skip
    for role, resource, count, cpus in NODES:
        for index in range(count):
            # A temp dir of its own, as on a machine of its own: a node deletes a job's
            # unpacked working directory there when its own workers are done with it.
            node_dir = Path(temp_dir) / f"{role}{index}"
            _ray_start(
                cluster,
                f"{role}_{index}",
                [
                    f"--address={cluster.gcs}",
                    f"--temp-dir={node_dir}",
                    f"--num-cpus={cpus}",
                    f"--resources={json.dumps({resource: 1})}",
                    *_node_ports(),
                ],
            )
        say(f"rehearse: {count} {role} node(s), {cpus} CPU(s) each, marked {resource}")
    _wait_until_serving(cluster)
    return cluster


def _wait_until_serving(cluster: Cluster, timeout_s: float = 120) -> None:
    headers = {"Authorization": f"Bearer {cluster.token_path.read_text()}"}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{cluster.dashboard}/api/version", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(1)
    raise RehearsalError(f"the job server at {cluster.dashboard} did not answer in {timeout_s} s")


def stop_cluster(cluster: Cluster, keep_logs: Path | None = None) -> None:
    """Kill every process of the cluster: the raylets' and GCS's trees, then whatever is
    left that names its temp dir (in its command line or working directory). With
    `keep_logs`, Ray's logs of the session (every node's) are copied there first."""
    import psutil

    if keep_logs is not None:
        root = Path(cluster.temp_dir)
        for logs in root.glob("**/session_2*/logs"):
            node = logs.parent.parent.relative_to(root).as_posix().replace(".", "head")
            with contextlib.suppress(OSError):
                shutil.copytree(logs, keep_logs / node, dirs_exist_ok=True)

    ours = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            places = [*(process.info["cmdline"] or ()), process.info["cwd"] or ""]
            if any(cluster.temp_dir in place for place in places):
                ours.append(process)
    for process in list(ours):
        with contextlib.suppress(psutil.Error):
            ours.extend(process.children(recursive=True))
    for process in ours:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(ours, timeout=10)
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)


def submit(cluster: Cluster, overrides: list[str]) -> str:
    """Submit the training job with launch/submit.sh; its submission id."""
    env = cluster.env | {"RAY_ADDRESS": cluster.dashboard}
    done = subprocess.run(
        ["bash", str(ROOT / "launch" / "submit.sh"), *overrides],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    if done.returncode:
        raise RehearsalError(f"launch/submit.sh exited {done.returncode}: {done.stderr[-2000:]}")
    for line in done.stdout.splitlines():
        if line.startswith("job id: "):
            return line.removeprefix("job id: ").strip()
    raise RehearsalError(f"launch/submit.sh printed no job id: {done.stdout[-2000:]}")


class Job:
    """The submitted job, through Ray's job SDK (the token in its headers: the SDK adds it
    itself only where Ray was imported in token mode)."""

    def __init__(self, cluster: Cluster, job_id: str, run_dir: Path) -> None:
        from ray.job_submission import JobSubmissionClient

        token = cluster.token_path.read_text()
        self.client = JobSubmissionClient(
            cluster.dashboard, headers={"Authorization": f"Bearer {token}"}
        )
        self.id = job_id
        self.temp_dir = cluster.temp_dir
        self.log = run_dir / "train.log"
        self.run_dir = run_dir

    def save_log(self) -> None:
        """The job's whole log (its driver's output) into the run folder, as `job.log`."""
        with contextlib.suppress(Exception):  # the head may be gone already
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "job.log").write_text(self.client.get_job_logs(self.id))

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.client.get_job_logs(self.id).splitlines()[-lines:])
        except Exception as exc:  # the head may be gone already
            return f"(unreadable: {exc})"

    def ended(self) -> bool:
        return self.client.get_job_status(self.id).is_terminal()

    def status(self) -> str:
        return str(self.client.get_job_status(self.id).value)

    def wait_for_line(self, text: str, deadline: float) -> None:
        """Return once the run's log has `text`; raise if the job ends first."""
        while time.monotonic() < deadline:
            if self.log.exists() and text in self.log.read_text():
                return
            if self.ended():
                raise RehearsalError(f"the job ended ({self.status()}) before {text!r}")
            time.sleep(POLL_S)
        raise RehearsalError(f"no {text!r} in {self.log} in time")

    def wait(self, deadline: float) -> str:
        while not self.ended():
            if time.monotonic() > deadline:
                self.client.stop_job(self.id)
                raise RehearsalError(f"the job ran past {JOB_TIMEOUT_S} s: stopped")
            time.sleep(1)
        return self.status()


def _iteration_line(iteration: int) -> str:
    """What the run logs once an iteration is done (`launch.train`'s summary line)."""
    return f"iter {iteration:4d} "


@dataclass
class Dealt:
    drill: str
    iteration: int
    what: str


def deal(drill: str, iteration: int, job: Job, deadline: float) -> Dealt:
    """Wait until `iteration` is being played, then deal `drill`."""
    placed = json.loads((job.run_dir / PLACEMENT_FILE).read_text())
    before = "before training" if iteration == 1 else _iteration_line(iteration - 1)
    job.wait_for_line(before, deadline)
    inference_raylets = raylets_in(f"{job.temp_dir}/inference")
    if drill == "node":
        engine = placed["inference-0"]["pid"]
        playing_engine({raylet_of(engine).pid})
        time.sleep(1)
        raylet = kill_node_of(engine)
        return Dealt(drill, iteration, f"killed the raylet {raylet} of inference-0's node")
    playing_engine(inference_raylets)
    time.sleep(1)
    if drill == "hang":
        pid = stop_a_playing_engine(inference_raylets)
        return Dealt(drill, iteration, f"stopped engine process {pid} (SIGSTOP)")
    if drill == "sandbox":
        raylet = kill_node_of(placed["sandbox-0"]["pid"])
        return Dealt(drill, iteration, f"killed the raylet {raylet} of sandbox-0's node")
    kill_process(placed["learner-1"]["pid"])
    return Dealt(drill, iteration, f"killed learner rank 1 (process {placed['learner-1']['pid']})")


def survived(dealt: Dealt, lines: list[dict], log: str) -> str | None:
    """Why the run's metrics do not show `dealt` survived as it should be; None if they do."""
    at = {m["iteration"]: m for m in lines}
    now, before = at.get(dealt.iteration), at.get(dealt.iteration - 1, {})
    if now is None:
        return f"iteration {dealt.iteration} has no metrics"
    last = lines[-1]
    if dealt.drill == "node":
        if now["tasks_redone"] <= before.get("tasks_redone", 0):
            return "no chunk of the lost engine was played again"
        if last["restarts_inference"] < 1:
            return "the lost engine was not restarted"
    if dealt.drill == "hang" and now["engines_hung"] != before.get("engines_hung", 0) + 1:
        return f"engines_hung went {before.get('engines_hung', 0)} -> {now['engines_hung']}"
    if dealt.drill == "sandbox" and last["restarts_sandbox"] < 1:
        return "no sandbox actor was restarted"
    if dealt.drill == "learner" and "relaunching the learner group" not in log:
        return "the run did not relaunch its learner group"
    return None


def expected_order(config: TrainConfig) -> list[list[str]]:
    """Each iteration's problems in an uninterrupted run of `config`."""
    from transformers import AutoTokenizer

    from problems.stream import ProblemStream

    tokenizer = AutoTokenizer.from_pretrained(config.model.location())
    stream = ProblemStream(training_problems(config, tokenizer), config.trainer.seed)
    count = config.trainer.rollouts_per_iteration
    return [[p.name for p in stream.take(count)] for _ in range(config.trainer.iterations)]


TIME_COLUMNS = (
    ("generate", "time_generate_s"),
    ("sandbox", None),
    ("wait", "time_wait_rollouts_s"),
    ("prepare", "time_prepare_s"),
    ("update", "time_update_s"),
    ("sync", "time_sync_s"),
)


def time_table(lines: list[dict]) -> str:
    """Per iteration: where its time went (seconds) and the bytes moved between nodes.
    `sandbox` is the part of generation the engines spent waiting for verdicts."""
    header = "  iter " + "".join(f"{name:>9}" for name, _ in TIME_COLUMNS) + "  cross-node"
    rows = [header]
    for m in lines:
        cells = []
        for name, key in TIME_COLUMNS:
            value = m["sandbox_share"] * m["time_generate_s"] if name == "sandbox" else m[key]
            cells.append(f"{value:8.1f}s")
        moved = m.get("cross_node_bytes")
        bytes_cell = f"{moved / 2**20:8.1f} MiB" if moved is not None else "      n/a"
        rows.append(
            f"  {m['iteration']:4d} " + "".join(f"{c:>9}" for c in cells) + f"  {bytes_cell}"
        )
    return "\n".join(rows)


def rehearse(drills: list[str], overrides: list[str], say=print) -> int:
    """Start the cluster, run the job through `drills`, check it, stop the cluster; the
    exit status (0: every drill survived and nothing lost)."""
    run_dir = ROOT / "outputs" / "rehearse" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    overrides = ["+experiment=rehearsal", f"run.dir={run_dir}", *overrides]
    config = compose_config("train", overrides, TrainConfig)
    if len(drills) >= config.trainer.iterations:
        raise RehearsalError(
            f"{len(drills)} drills need at least {len(drills) + 1} iterations "
            f"(trainer.iterations={config.trainer.iterations})"
        )
    expected = expected_order(config)
    started = time.monotonic()
    deadline = started + JOB_TIMEOUT_S
    cluster = start_cluster(say)
    job, failed = None, True
    try:
        job = Job(cluster, submit(cluster, overrides), run_dir)
        say(f"rehearse: submitted {job.id}; run folder {run_dir}")
        job.wait_for_line("train: placed", deadline)
        dealt = []
        for iteration, drill in enumerate(drills, start=1):
            dealt.append(deal(drill, iteration, job, deadline))
            say(f"rehearse: drill {drill} in iteration {iteration}: {dealt[-1].what}")
        status = job.wait(deadline)
        if status != "SUCCEEDED":
            raise RehearsalError(f"the job ended {status}")
        failed = False
    except (RehearsalError, DrillError) as exc:
        tail = job.log_tail() if job else ""
        raise RehearsalError(
            f"{exc}; Ray's logs are in {run_dir / 'ray_logs'}; the job's log ends:\n{tail}"
        ) from exc
    finally:
        if job is not None:
            job.save_log()
        stop_cluster(cluster, run_dir / "ray_logs" if failed else None)
    log = job.log.read_text()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    faults = lost_anything(run_dir, expected)
    verdicts = [(d, survived(d, lines, log)) for d in dealt]
    say(time_table(lines))
    for d, why in verdicts:
        say(f"rehearse: drill {d.drill} (iteration {d.iteration}): {why or 'survived'}")
    for fault in faults:
        say(f"rehearse: LOST: {fault}")
    passed = sum(why is None for _, why in verdicts)
    say(
        f"rehearse: job {status}, {len(lines)} of {config.trainer.iterations} iterations, "
        f"drills passed {passed}/{len(dealt)}, "
        f"{'nothing lost' if not faults else f'{len(faults)} faults'}; "
        f"{time.monotonic() - started:.0f} s; run folder {run_dir}"
    )
    return 0 if passed == len(dealt) and not faults else 1


def _drills(text: str) -> list[str]:
    if text == "none":
        return []
    chosen = [d.strip() for d in text.split(",") if d.strip()]
    unknown = [d for d in chosen if d not in DRILLS]
    if unknown or len(set(chosen)) != len(chosen):
        raise argparse.ArgumentTypeError(
            f"{text!r}: drills are a comma-separated list of {', '.join(DRILLS)} "
            "(each at most once), or none"
        )
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rehearse", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--drills", type=_drills, default=list(DRILLS), help=f"default {','.join(DRILLS)}"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of launch.train")
    args = parser.parse_args(argv)
    try:
        return rehearse(args.drills, args.overrides)
    except USAGE_ERRORS as exc:
        print(f"rehearse: error: {exc}", file=sys.stderr)
        return 2
    except (RehearsalError, DrillError) as exc:
        print(f"rehearse: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
