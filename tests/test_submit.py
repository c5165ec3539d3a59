"""Submitting the training app to a Ray cluster (`launch/submit.sh`): a head of its own
(temp dir, ports, token; the dashboard on 127.0.0.1; token authentication on, as Ray 2.60
turns it on when `ray start --head` finds a token) refuses a submission without the
right token, and runs the default job (shortened to one iteration) whose log has the
iteration's summary line while its actors' `rlef_` metrics show on the head's Prometheus
endpoint."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from launch.rehearse import CLIENT_VARIABLES, free_ports

ROOT = Path(__file__).resolve().parents[1]
SUBMIT = ROOT / "launch" / "submit.sh"
VENV_BIN = Path(sys.executable).parent
JOB_SECONDS = 360
"""The tiny job takes 1-2 minutes on 2 cores; past this it has hung."""
METRIC_NAME = re.compile(r"^((?:ray_)?rlef_\w+)", re.MULTILINE)


@dataclass
class Head:
    dashboard: str
    """The job server's address, http://127.0.0.1:PORT."""
    metrics: str
    """The head's Prometheus endpoint."""
    token_path: Path
    env: dict[str, str]
    """The environment of a user who holds the token and knows the address."""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_path.read_text()}"}


def _get(url: str, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def _wait_until_serving(head: Head, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            _get(f"{head.dashboard}/api/version", head.headers())
            return
        except (urllib.error.URLError, ConnectionError):
            try:  # paced by the head's own exit, which ends the wait at once
                process.wait(timeout=1)
                pytest.fail(f"ray start exited {process.returncode}:\n{log.read_text()[-3000:]}")
            except subprocess.TimeoutExpired:
                pass
    pytest.fail(f"the Ray head did not serve within 120 s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen, temp_dir: str) -> None:
    """End the head's process group, then what is left of this head (its temp dir in the
    command line or as working directory: the job's driver has a session of its own)."""
    import psutil

    try:
        os.killpg(process.pid, signal.SIGTERM)
        # `ray start --block` did not end within 30 s of SIGTERM: a short grace, then SIGKILL.
        process.wait(timeout=5)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    for leftover in psutil.process_iter(["cmdline", "cwd"]):
        places = [*(leftover.info["cmdline"] or ()), leftover.info["cwd"] or ""]
        if any(temp_dir in place for place in places):
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()


@pytest.fixture(scope="module")
def head():
    temp_dir = tempfile.mkdtemp(prefix="rlef-ray-")  # short: Ray's socket paths must fit
    token_path = Path(temp_dir) / "auth_token"
    token_path.write_text(secrets.token_hex(32))
    token_path.chmod(0o600)
    gcs, dashboard, metrics, listen, grpc, runtime_env, client, node, objects = free_ports(9)
    env = {key: value for key, value in os.environ.items() if key not in CLIENT_VARIABLES}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env['PATH']}", RAY_AUTH_TOKEN_PATH=str(token_path))
    command = [
        str(VENV_BIN / "ray"), "start", "--head", "--block",
        "--dashboard-host=127.0.0.1",
        f"--port={gcs}", f"--dashboard-port={dashboard}", f"--metrics-export-port={metrics}",
        f"--dashboard-agent-listen-port={listen}", f"--dashboard-agent-grpc-port={grpc}",
        f"--runtime-env-agent-port={runtime_env}", f"--ray-client-server-port={client}",
        f"--node-manager-port={node}", f"--object-manager-port={objects}",
        "--min-worker-port=0", "--max-worker-port=0",
        # A 2-core head's own count: fewer CPUs than the default job's actors reserve.
        "--num-cpus=2", f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]  # fmt: skip
    log = Path(temp_dir) / "ray_start.log"
    with log.open("w") as out:
        # A session of its own: Ray's reaper ends the head's process group, not pytest.
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    address = f"http://127.0.0.1:{dashboard}"
    serving = Head(
        dashboard=address,
        metrics=f"http://127.0.0.1:{metrics}/metrics",
        token_path=token_path,
        env=env | {"RAY_ADDRESS": address},
    )
    try:
        _wait_until_serving(serving, process, log)
        yield serving
    finally:
        _stop(process, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _submit(env: dict[str, str], *overrides: str) -> subprocess.CompletedProcess:
    command = ["bash", str(SUBMIT), *overrides]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def _job_count(head: Head) -> int:
    return len(json.loads(_get(f"{head.dashboard}/api/jobs/", head.headers())))


def test_the_dashboard_listens_on_loopback_only(head):
    import psutil

    port = int(head.dashboard.rpartition(":")[2])
    listening = {
        c.laddr.ip
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    assert listening and listening <= {"127.0.0.1", "::1"}, listening


def test_a_submission_without_a_token_is_refused(head, tmp_path):
    env = {k: v for k, v in head.env.items() if k != "RAY_AUTH_TOKEN_PATH"}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    jobs = _job_count(head)
    done = _submit(env, "trainer.iterations=1")
    assert done.returncode == 2 and "RAY_AUTH_TOKEN_PATH" in done.stderr, done.stderr
    # What submit.sh stops short of: the job API refuses a request that has no token.
    request = urllib.request.Request(
        f"{head.dashboard}/api/jobs/", data=b'{"entrypoint": "echo hi"}', method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert _job_count(head) == jobs


def test_a_submission_with_a_wrong_token_is_refused(head, tmp_path):
    env = head.env | {"HOME": str(tmp_path), "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    jobs = _job_count(head)
    done = _submit(env, "trainer.iterations=1")
    assert done.returncode != 0
    assert "Authentication failed" in done.stderr + done.stdout, done.stderr[-3000:]
    assert _job_count(head) == jobs


def _scrape(url: str) -> set[str]:
    """The `rlef_` metric names on the endpoint now (none if it does not answer)."""
    try:
        return set(METRIC_NAME.findall(_get(url)))
    except (urllib.error.URLError, ConnectionError):
        return set()


@pytest.mark.slow
def test_the_default_job_as_submitted_trains_and_exports_metrics(head, tmp_path):
    # The default config, shortened: its model is the shipped one, which must travel with
    # the job's working directory (a relative model.path, read on the cluster).
    done = _submit(
        head.env,
        f"run.dir={tmp_path / 'run'}",
        "trainer.iterations=1",
        "trainer.rollouts_per_iteration=8",
        "dialog.sampling.max_new_tokens=32",
        "eval.problems=4",
        "eval.rollouts=1",
        "run.report=false",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = re.search(r"^job id: (\S+)$", done.stdout, re.MULTILINE).group(1)
    assert f"ray job logs --follow --address {head.dashboard} {job_id}" in done.stdout

    # `ray job logs --follow` ends with the job; metrics of actors that ended may vanish
    # from the endpoint, so it is scraped while the job runs, and once more after.
    follow_log = tmp_path / "follow.log"
    command = [str(VENV_BIN / "ray"), "job", "logs", "--follow", job_id]
    with follow_log.open("w") as out:
        follower = subprocess.Popen(
            command, env=head.env | {"RAY_AUTH_MODE": "token"}, stdout=out, stderr=out
        )
    seen: set[str] = set()
    deadline = time.monotonic() + JOB_SECONDS
    while follower.poll() is None and time.monotonic() < deadline:
        seen |= _scrape(head.metrics)
        try:
            follower.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    follower.kill()
    seen |= _scrape(head.metrics)

    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(head.dashboard, headers=head.headers())
    status, logs = client.get_job_status(job_id), client.get_job_logs(job_id)
    if status != JobStatus.SUCCEEDED:
        client.stop_job(job_id)
        pytest.fail(f"job {job_id} is {status}:\n{logs[-5000:]}")
    assert re.search(r"iter\s+1\s+reward", logs), logs[-3000:]  # the summary line
    assert "train: done, 1 iterations" in logs
    # The head offers 2 CPUs, the default actors reserve 3: fitted, not left waiting.
    assert "the Ray cluster has 2 CPUs and this run reserves 3" in logs, logs[-3000:]
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    # Every metric a run without faults records (restarts and drops need faults; the
    # quick tiny model writes no code, so the sandbox's are checked below).
    for metric in (
        "rlef_rollouts",
        "rlef_generated_tokens",
        "rlef_engine_busy_fraction",
        "rlef_replay_queue_depth",
        "rlef_weight_version",
        "rlef_learner_update_seconds",
        "rlef_weight_sync_seconds",
    ):
        suffixes = "(_total|_bucket|_sum|_count)?"
        assert any(re.fullmatch(rf"(ray_)?{metric}{suffixes}", name) for name in seen), (
            f"{metric} not on {head.metrics}; rlef_ metrics seen: {sorted(seen)}"
        )


SANDBOX_JOB = """
import time
import ray
from sandbox import Job, SandboxConfig, TestSet
from actors.sandbox_pool import SandboxPool
ray.init()
pool = SandboxPool.start(SandboxConfig(), 1, name_prefix="sandbox", num_cpus_per_actor=0.5)
tests = TestSet("stdio", ("2",), ("4",))
judged = pool.run([Job("print(int(input()) * 2)", tests, 2.0, 256) for _ in range(4)])
assert all(judgement.passed for judgement in judged)
print("judged", flush=True)
time.sleep(30)  # the actor stays while its metrics are scraped
"""


@pytest.mark.slow
def test_sandbox_actors_export_their_metrics(head):
    command = [
        str(VENV_BIN / "ray"), "job", "submit", "--address", head.dashboard,
        "--working-dir", str(ROOT), "--runtime-env", str(ROOT / "launch" / "runtime_env.yaml"),
        "--", "python", "-c", SANDBOX_JOB,
    ]  # fmt: skip
    job = subprocess.Popen(
        command,
        env=head.env | {"RAY_AUTH_MODE": "token"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    seen: set[str] = set()
    wanted = {"ray_rlef_sandbox_executions_total", "ray_rlef_sandbox_queue_wait_seconds_count"}
    deadline = time.monotonic() + 120
    while job.poll() is None and time.monotonic() < deadline and not wanted <= seen:
        seen |= _scrape(head.metrics)
        time.sleep(2)
    job.kill()
    output = job.communicate()[0]
    assert "judged" in output, output[-3000:]
    assert wanted <= seen, f"rlef_ metrics seen: {sorted(seen)}"
