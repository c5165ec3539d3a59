"""The caller's side: start fork servers, compile, send tests, judge, survive server deaths.

`Sandbox` is the plain class behind `SandboxActor`: it owns `config.workers` fork servers
(`sandbox/zygote.py` processes) and runs one job per server at a time. A server that dies
or hangs in the middle of a test is restarted and the test run once more; a test that
breaks its server twice gets `runtime_error`.
"""

from __future__ import annotations

import logging
import marshal
import math
import os
import queue
import select
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from types import CodeType

from . import cgroup, zygote
from .config import SandboxConfig
from .judge import Outcome, verdict
from .records import ASSERTIONS, Job, Judgement, TestResult
from .trim import trim_middle

logger = logging.getLogger("sandbox")

ZYGOTE_SCRIPT = Path(zygote.__file__).resolve()
PROGRAM_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
"""The fork server's whole environment, which tests inherit (plus HOME and TMPDIR, their
working directory): no secret of the caller's reaches either."""
START_TIMEOUT_S = 30.0
_MIB = 1024 * 1024
_warned: set[str] = set()


class SandboxStartError(RuntimeError):
    """A fork server could not start (e.g. isolation='namespaces' on a kernel that refuses)."""


class ServerDied(RuntimeError):
    """A fork server exited, or stopped answering, in the middle of a test."""


def warn_once(message: str) -> None:
    """Log a sandbox warning once per process, loudly (to stderr even without logging set up)."""
    if message not in _warned:
        _warned.add(message)
        logger.warning("sandbox: %s", message)


def _library_paths() -> list[str]:
    """Where this interpreter's installed packages live, so tests may import them too."""
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


def _python_paths() -> list[str]:
    """This Python's files as a `python3` started the usual way sees them (its executable,
    its environment's prefixes, the standard library), for the tests' root view."""
    prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    return sorted({sys.executable, *prefixes, *sysconfig.get_paths().values()})


class ForkServer:
    """One fork server process, the pipes to it, and the tests it runs."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.process: subprocess.Popen | None = None
        self.isolation: dict = {}
        self._scratch: str | None = None
        self._cgroup: cgroup.MemoryCgroup | None = None
        self.start()

    def start(self) -> None:
        try:
            self._start(self.config.isolation)
        except SandboxStartError as exc:
            if self.config.isolation == "namespaces":
                raise SandboxStartError(
                    f"{exc}; set sandbox.isolation=auto to run without namespaces (with a warning)"
                ) from exc.__cause__
            if self.config.isolation != "auto":
                raise
            self._start("none", reason=f"the kernel refused namespaces ({exc})")

    def _start(self, isolation: str, reason: str = "") -> None:
        # Without namespaces the tests' directories; with them, where the root view is built.
        self._scratch = tempfile.mkdtemp(prefix="rlef-sandbox-")
        self._cgroup, no_cgroup = cgroup.make()
        settings = {
            **asdict(self.config),
            "isolation": isolation,
            "refused": reason,
            "scratch": self._scratch,
            "library_paths": _library_paths(),
            "python_paths": _python_paths(),
            "memory_cgroup": self._cgroup.files() if self._cgroup is not None else None,
            "memory_cgroup_missing": no_cgroup,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(ZYGOTE_SCRIPT), marshal.dumps(settings).hex()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",
            env=PROGRAM_ENV,
        )
        try:
            hello = self._receive(time.monotonic() + START_TIMEOUT_S)
        except ServerDied as exc:
            self.stop()
            raise SandboxStartError(f"the sandbox's fork server did not start: {exc}") from exc
        if "error" in hello:
            self.stop()
            raise SandboxStartError(hello["error"])
        self.isolation = hello["isolation"]
        if self.isolation["namespaces"] and self.isolation["process_cap"] == "none":
            no_cap = (
                "running as root in a user namespace (the kernel refused namespaces to root "
                "itself): tests have NO process cap, the host's root is exempt from RLIMIT_NPROC"
            )
            if self.config.isolation == "namespaces":
                self.stop()
                raise SandboxStartError(f"cannot isolate tests: {no_cap}")
            self.isolation["warnings"].append(no_cap)
        for warning in self.isolation["warnings"]:
            warn_once(warning)

    def stop(self) -> None:
        try:
            if self.process is not None:
                self.process.kill()
                self.process.wait()
                for pipe in (self.process.stdin, self.process.stdout):
                    try:
                        pipe.close()
                    except OSError:
                        pass  # a request still buffered for a server that is gone
                self.process = None
        finally:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None
            if self._cgroup is not None:
                cgroup.remove(self._cgroup)
                self._cgroup = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def run_test(self, request: dict) -> dict:
        """Run one test; raise ServerDied if the server dies or outlives the test's limits."""
        data = marshal.dumps(request)
        try:
            self.process.stdin.write(len(data).to_bytes(zygote.FRAME_HEADER, "little") + data)
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise ServerDied(f"its input pipe is closed ({exc})") from exc
        return self._receive(
            time.monotonic() + request["wall_s"] + self.config.job_timeout_margin_s
        )

    def _receive(self, deadline: float) -> dict:
        fd = self.process.stdout.fileno()
        header = self._read_exactly(fd, zygote.FRAME_HEADER, deadline)
        return marshal.loads(self._read_exactly(fd, int.from_bytes(header, "little"), deadline))

    def _read_exactly(self, fd: int, size: int, deadline: float) -> bytes:
        parts = []
        waiting = select.poll()  # not select(): descriptors past 1024 (many workers)
        waiting.register(fd, select.POLLIN)
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerDied("it stopped answering")
            if not waiting.poll(remaining * 1000):
                continue
            data = os.read(fd, size)
            if not data:
                raise ServerDied(f"it exited with status {self.process.wait()}")
            parts.append(data)
            size -= len(data)
        return b"".join(parts)


def _compile(source: str, filename: str) -> CodeType | str:
    """The code object of `source`, or the message of its SyntaxError as Python prints it."""
    source = source.removeprefix("\ufeff")  # a BOM, which CPython skips in a source file
    try:
        return compile(source, filename, "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes in the source
        return "".join(traceback.format_exception_only(type(exc), exc))


class Sandbox:
    """Judges jobs on `config.workers` fork servers; safe to call from several threads."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._servers: list[ForkServer] = []
        self._idle: queue.SimpleQueue[ForkServer] = queue.SimpleQueue()
        try:
            for _ in range(self.config.workers):
                server = ForkServer(self.config)
                self._servers.append(server)
                self._idle.put(server)
        except BaseException:
            self.close()
            raise

    @property
    def isolation(self) -> dict:
        """What isolation the fork servers got (see `sandbox.zygote.enter_namespaces`)."""
        return self._servers[0].isolation

    def run(self, job: Job) -> Judgement:
        """Judge one job: its tests in order, on one fork server."""
        total = len(job.tests)
        program = _compile(job.program, zygote.PROGRAM_FILE)
        if isinstance(program, str):
            failed = self._result("runtime_error", 0.0, "", program)
            return Judgement.of([failed] * (1 if job.stop_on_first_failure else total), total)
        waiting_since = time.monotonic()
        server = self._idle.get()
        self.job_started(time.monotonic() - waiting_since)
        try:
            results = []
            for index in range(total):
                results.append(self._run_test(server, program, job, index))
                if job.stop_on_first_failure and results[-1].verdict != "passed":
                    break
            return Judgement.of(results, total)
        finally:
            self._idle.put(server)

    def job_started(self, queue_wait_s: float) -> None:
        """Called as each compiled job gets its fork server, `queue_wait_s` after it asked
        for one: a hook for `actors.sandbox_pool.MeteredSandbox`."""

    def run_many(
        self, jobs: Iterable[Job], on_done: Callable[[], None] | None = None
    ) -> list[Judgement]:
        """Judge jobs on all workers at once, in input order; `on_done` ticks progress."""

        def run_one(job: Job) -> Judgement:
            judgement = self.run(job)
            if on_done is not None:
                on_done()
            return judgement

        with ThreadPoolExecutor(max_workers=self.config.workers) as pool:
            return list(pool.map(run_one, jobs))

    def _run_test(self, server: ForkServer, program: CodeType, job: Job, index: int) -> TestResult:
        codes = [program]
        # On disk too, so that tracebacks show the program's source lines.
        files = {zygote.PROGRAM_FILE: job.program.encode()}
        stdin, expected = "", None
        if job.tests.kind == ASSERTIONS:
            script = job.tests.inputs[index]
            test_code = _compile(script, zygote.TEST_FILE)
            if isinstance(test_code, str):
                return self._result("runtime_error", 0.0, "", f"invalid test script: {test_code}")
            # The script is not written next to the program: a program could read it.
            codes.append(test_code)
        else:
            stdin, expected = job.tests.inputs[index], job.tests.outputs[index]
        request = {
            "codes": codes,
            "files": files,
            "stdin": stdin.encode(),
            "cpu_s": math.ceil(job.time_limit_s),
            "wall_s": self.config.wall_limit_s(job.time_limit_s),
            "memory_bytes": job.memory_mb * _MIB,
            "file_bytes": self.config.max_file_mb * _MIB,
            "max_stdout": self.config.max_stdout_bytes,
            "max_stderr": self.config.max_stderr_bytes,
        }
        for attempt in (1, 2):
            try:
                raw = server.run_test(request)
                break
            except ServerDied as exc:
                logger.warning(
                    "sandbox: fork server died during a test (attempt %d): %s; restarting it",
                    attempt,
                    exc,
                )
                server.restart()
        else:
            return self._result(
                "runtime_error", 0.0, "", "sandbox: the test broke its fork server twice"
            )
        if raw["server_changed"]:
            # The test reached its server (same uid) and changed what later tests inherit,
            # or left scratch files or unix sockets that cleanup could not remove.
            logger.warning(
                "sandbox: a test changed its fork server's limits or left files or sockets "
                "it could not remove; restarting it"
            )
            server.restart()
        outcome = Outcome(
            exit_code=raw["exit_code"],
            signal=raw["signal"],
            stdout=raw["stdout"].decode("utf-8", errors="replace"),
            stderr=raw["stderr"].decode("utf-8", errors="replace"),
            cpu_s=raw["cpu_s"],
            wall_s=raw["wall_s"],
            stopped_for=raw["stopped_for"],
            out_of_memory=raw["out_of_memory"],
            completed=raw["completed"],
        )
        return self._result(
            verdict(outcome, expected, job.time_limit_s),
            outcome.wall_s,
            outcome.stdout,
            outcome.stderr,
        )

    def _result(self, verdict_: str, time_s: float, stdout: str, stderr: str) -> TestResult:
        keep = self.config.keep_chars
        return TestResult(
            verdict_, round(time_s, 6), trim_middle(stdout, keep), trim_middle(stderr, keep)
        )

    def close(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers.clear()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
