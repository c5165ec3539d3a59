"""Isolation: each test checks one attack a model-written program could make."""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fixtures import run_one, stdio_job

from sandbox import Sandbox, SandboxConfig

NAMESPACES = "this machine's kernel refuses user namespaces"


@pytest.fixture(scope="module")
def small(request):
    """A sandbox with tight caps, to hit them quickly."""
    config = SandboxConfig(
        max_processes=8, max_file_mb=1, max_stdout_bytes=1 << 20, max_stderr_bytes=1 << 16
    )
    with Sandbox(config) as box:
        if not box.isolation["namespaces"]:
            pytest.skip(NAMESPACES)
        yield box


def _host_processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_tests_run_in_a_child_process_not_the_caller(sandbox):
    result = run_one(sandbox, "import os\nprint(os.getpid(), os.getppid())")
    pid, ppid = map(int, result.stdout.split())
    assert pid != os.getpid() and ppid != os.getpid()
    # The program's exit does not end the caller, which goes on judging.
    assert run_one(sandbox, "raise SystemExit(0)").verdict == "passed"


def test_cpu_time_limit(sandbox):
    result = run_one(sandbox, "while True: pass", time_limit_s=0.5)
    assert result.verdict == "timeout"
    assert result.time_s < 3.0


def test_wall_clock_limit_catches_a_sleeping_program(sandbox):
    result = run_one(sandbox, "import time\ntime.sleep(60)", time_limit_s=0.5)
    assert result.verdict == "timeout"
    assert (
        result.time_s < 0.5 * sandbox.config.wall_time_factor + sandbox.config.wall_time_grace_s + 1
    )


def test_address_space_limit(sandbox):
    result = run_one(sandbox, "x = bytearray(1024 * 1024 * 1024)\nprint(len(x))", memory_mb=256)
    assert result.verdict == "memory_exceeded"
    program = "x = bytearray(100 * 1024 * 1024)\nprint(len(x))"
    ok = run_one(sandbox, program, "", str(100 * 1024 * 1024), memory_mb=512)
    assert ok.verdict == "passed"


def _fork_bomb(forks: int, sleep_s: int) -> str:
    """A program that forks `forks` sleeping children, or as many as it may; prints how many."""
    return f"""
    import os, time
    started = 0
    try:
        for _ in range({forks}):
            if os.fork() == 0:
                time.sleep({sleep_s})
                os._exit(0)
            started += 1
    except OSError:
        pass
    print(started)
    """


def test_fork_bomb_is_capped_and_cleaned_up(small):
    result = run_one(small, _fork_bomb(200, 60))
    assert result.verdict == "wrong_answer"
    assert 0 < int(result.stdout) < small.config.max_processes
    # The next test of the server finds no process left but itself and the server.
    listing = run_one(
        small, "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
    )
    assert len(eval(listing.stdout)) == 2


def test_thread_bomb_is_capped(small):
    program = """
    import threading, time
    started = 0
    try:
        for _ in range(200):
            threading.Thread(target=time.sleep, args=(0.5,), daemon=True).start()
            started += 1
    except RuntimeError:
        pass
    print(started)
    """
    result = run_one(small, program)
    assert 0 < int(result.stdout) < small.config.max_processes


def test_file_size_limit(small):
    program = """
    with open("big.bin", "wb") as f:
        f.write(b"x" * (4 * 1024 * 1024))
    """
    result = run_one(small, program)
    assert result.verdict == "runtime_error"
    assert "File too large" in result.stderr


def test_stdout_flood_is_stopped(small):
    started = time.monotonic()
    result = run_one(small, "while True: print('flood' * 1000)", time_limit_s=10)
    assert result.verdict == "output_exceeded"
    assert time.monotonic() - started < 5


def test_stderr_flood_is_stopped(small):
    result = run_one(small, "import sys\nwhile True: sys.stderr.write('e' * 4096)", time_limit_s=10)
    assert result.verdict == "output_exceeded"


def test_each_test_gets_a_fresh_empty_working_directory(sandbox):
    program = """
    import os
    print(os.getcwd(), sorted(os.listdir(".")))
    open("left-behind.txt", "w").write("x")
    """
    first, second = sandbox.run(stdio_job(program, ["", ""])).tests
    for test in (first, second):
        _, files = test.stdout.split(" ", 1)
        assert files.strip() == "['solution.py']", test


def test_nothing_is_written_outside_the_sandbox(sandbox, tmp_path):
    if not sandbox.isolation["namespaces"]:
        pytest.skip(NAMESPACES)
    target = tmp_path / "escaped.txt"
    tmp_target = Path("/tmp") / f"rlef-escape-{os.getpid()}.txt"
    program = f"""
    for path in ({str(target)!r}, {str(tmp_target)!r}, "/dev/shm/rlef-escape"):
        try:
            open(path, "w").write("escaped")
            print("wrote", path)
        except OSError as exc:
            print("refused", path, exc.errno)
    """
    result = run_one(sandbox, program)
    assert f"refused {target}" in result.stdout  # read-only file system
    assert not target.exists()
    assert not tmp_target.exists()  # /tmp was a private tmpfs
    assert not Path("/dev/shm/rlef-escape").exists()


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("RLEF_TEST_SECRET_TOKEN", "hunter2")
    with Sandbox(SandboxConfig()) as box:  # started after the secret was set
        result = run_one(box, "import os\nprint(dict(os.environ))")
    assert "hunter2" not in result.stdout
    assert "RLEF_TEST_SECRET_TOKEN" not in result.stdout
    assert "'PATH'" in result.stdout


def test_no_network_not_even_to_the_callers_loopback(sandbox):
    if not sandbox.isolation["namespaces"]:
        pytest.skip(NAMESPACES)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    program = f"""
    import socket
    for address in (("127.0.0.1", {port}), ("1.1.1.1", 53)):
        try:
            socket.create_connection(address, timeout=2).close()
            print("connected", address)
        except OSError as exc:
            print("refused", address)
    """
    try:
        result = run_one(sandbox, program)
    finally:
        server.close()
    assert "connected" not in result.stdout
    assert result.stdout.count("refused") == 2
    assert not accepted


def test_without_namespaces_the_sandbox_warns_loudly(caplog):
    with caplog.at_level(logging.WARNING, logger="sandbox"):
        with Sandbox(SandboxConfig(isolation="none")) as box:
            assert run_one(box, "print(1)", "", "1").verdict == "passed"
            assert not box.isolation["namespaces"]
    assert "WITHOUT network isolation" in caplog.text


def _both_isolations_as_root_of_a_user_namespace(folder: Path, prelude: str = ""):
    """`python -m sandbox` run with --isolation namespaces, then auto, on one passing
    program, as root of a user namespace (`unshare --map-root-user`) after the shell
    `prelude`; the process, and stdout's part after the first run's exit status."""
    (folder / "p.py").write_text("print(int(input()) * 2)")
    (folder / "t.json").write_text('{"input": ["2"], "output": ["4"]}')
    sandbox_cli = f"{sys.executable} -m sandbox {{}} run --program p.py --tests t.json"
    script = (
        prelude
        + sandbox_cli.format("--isolation namespaces")
        + "; echo status=$?; "
        + sandbox_cli.format("--isolation auto")
    )
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", script],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, *done.stdout.partition("status=")[::2]


def test_a_kernel_that_refuses_namespaces_gives_a_clear_error_or_a_loud_warning(tmp_path):
    """Inside a user namespace whose limit on nested ones is 0, the kernel refuses ours."""
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is not installed")
    done, first, second = _both_isolations_as_root_of_a_user_namespace(
        tmp_path, "echo 0 > /proc/sys/user/max_user_namespaces || exit 99; "
    )
    if done.returncode == 99 or "unshare failed" in done.stderr:
        pytest.skip("cannot make a user namespace with a zero nested-namespace limit here")
    assert first == ""  # refused: nothing judged
    assert second.startswith("1\n")
    assert "cannot isolate tests" in done.stderr
    assert "set sandbox.isolation=auto" in done.stderr
    assert json.loads(second.split("\n", 1)[1])["passed"] is True  # auto: ran anyway...
    assert "WITHOUT network isolation" in done.stderr  # ...and said so


def test_daemonized_grandchildren_that_ignore_sigterm_do_not_survive(sandbox):
    marker = f"{time.time_ns() % 10**9}.{os.getpid()}"
    program = f"""
    import os, signal, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.execv("/bin/sleep", ["sleep", "{marker}"])
        os._exit(0)
    time.sleep(0.3)
    print("parent done")
    """
    result = run_one(sandbox, program)
    assert result.stdout == "parent done\n"
    assert _host_processes_with(marker) == []


def test_a_program_that_kills_its_parent_does_not_kill_the_sandbox(sandbox):
    program = """
    import os, signal
    for target in (os.getppid(), 1):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            try:
                os.kill(target, sig)
            except OSError:
                pass
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    print("still here")
    """
    before = [server.process.pid for server in sandbox._servers]
    judgement = sandbox.run(stdio_job(program, ["", ""], ["still here", "still here"]))
    assert judgement.passed
    assert [server.process.pid for server in sandbox._servers] == before


def test_a_program_that_closes_its_descriptors_does_not_break_the_sandbox(sandbox):
    program = """
    import os
    os.closerange(0, 4096)
    while True:
        pass
    """
    job = stdio_job(program, [""], time_limit_s=0.5)
    assert sandbox.run(job).tests[0].verdict == "timeout"
    assert run_one(sandbox, "print(2)", "", "2").verdict == "passed"


def test_a_server_killed_from_outside_is_restarted_and_the_test_rerun(caplog):
    with Sandbox(SandboxConfig()) as box:
        server = box._servers[0]
        victim = server.process.pid
        threading.Timer(0.3, os.kill, (victim, 9)).start()
        with caplog.at_level(logging.WARNING, logger="sandbox"):
            result = run_one(box, "import time\ntime.sleep(1)\nprint(7)", "", "7")
        assert result.verdict == "passed"
        assert server.process.pid != victim
    assert "fork server died" in caplog.text


def test_source_lines_of_the_sandbox_are_not_readable_through_tracebacks(sandbox):
    result = run_one(
        sandbox,
        textwrap.dedent("""
    import sys
    print([p for p in sys.path if "work" in p and "site-packages" not in p])
    """),
    )
    assert result.stdout.strip() == "[]"  # the repository is not on the program's path


# --- breaches found by trying, as root with namespaces (issue 19) ---------------------


@pytest.fixture(scope="module")
def one_server():
    """One fork server, so that consecutive tests are known to share it."""
    with Sandbox(SandboxConfig(workers=1)) as box:
        if not box.isolation["namespaces"]:
            pytest.skip(NAMESPACES)
        yield box


def test_tests_run_as_an_unprivileged_uid_without_capabilities(one_server):
    program = """
    import os
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    caps = status["CapEff"].strip(), status["CapPrm"].strip()
    print(os.getuid(), os.geteuid(), os.getgid(), *caps)
    """
    uid, euid, gid, effective, permitted = run_one(one_server, program).stdout.split()
    assert int(effective, 16) == 0 and int(permitted, 16) == 0
    if os.geteuid() == 0:
        assert one_server.isolation["test_uid"] == int(uid) == int(euid) == int(gid) != 0


def test_host_kernel_settings_are_not_writable():
    setting = Path("/proc/sys/vm/swappiness")
    before = setting.read_text()
    program = f"""
    for path, text in (("{setting}", "{int(before) + 1}"), ("/proc/sys/kernel/core_pattern", "x")):
        try:
            with open(path, "w") as f:
                f.write(text)
            print("wrote", path)
        except OSError as exc:
            print("refused", path, exc.errno)
    """
    try:
        with Sandbox(SandboxConfig()) as box:
            if not box.isolation["namespaces"]:
                pytest.skip(NAMESPACES)
            result = run_one(box, program)
        assert "wrote" not in result.stdout, result.stdout
        assert setting.read_text() == before
    finally:
        if setting.read_text() != before and os.access(setting, os.W_OK):
            setting.write_text(before)


def _kernel_log() -> str:
    """The kernel log's current records (root reads /dev/kmsg without blocking)."""
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    records = []
    try:
        while True:
            try:
                records.append(os.read(fd, 8192).decode(errors="replace"))
            except BlockingIOError:
                return "".join(records)
            except OSError:  # EPIPE: a record was overwritten while reading
                continue
    finally:
        os.close(fd)


def test_device_nodes_of_the_host_are_not_writable(one_server):
    if not os.access("/dev/kmsg", os.R_OK):
        pytest.skip("cannot read the kernel log here to check")
    marker = f"rlef-sandbox-kmsg-{time.time_ns()}"
    program = f"""
    import os
    for path in ("/dev/kmsg", "/dev/console", "/dev/mem", "/dev/tty"):
        try:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, b"{marker}\\n")
            print("wrote", path)
        except OSError as exc:
            print("refused", path, exc.errno)
    print(sorted(os.listdir("/dev")))
    """
    result = run_one(one_server, program)
    assert "wrote" not in result.stdout, result.stdout
    assert marker not in _kernel_log()
    listed = result.stdout.splitlines()[-1]
    assert listed == str(["fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout",
                          "urandom", "zero"])  # fmt: skip


def test_unix_sockets_of_the_host_are_not_reachable(one_server):
    path = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="rlef-socket-")) / "listener"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        path.chmod(0o777)  # anyone on the host may connect: only the view can hide it
        listener.listen()
        listener.settimeout(0.5)
        program = f"""
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect({str(path)!r})
            print("connected")
        except OSError as exc:
            print("refused", exc.errno)
        """
        assert run_one(one_server, program).stdout.startswith("refused")
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()
        shutil.rmtree(path.parent)


def test_a_test_cannot_change_its_servers_limits_or_scheduling(one_server):
    attack = """
    import os, resource
    done = []
    for pid in (1, os.getppid()):
        for name, attempt in (
            ("prlimit", lambda: resource.prlimit(pid, resource.RLIMIT_AS, (1 << 20, 1 << 20))),
            ("nproc", lambda: resource.prlimit(pid, resource.RLIMIT_NPROC, (1, 1))),
            ("nice", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)),
            ("affinity", lambda: os.sched_setaffinity(pid, {min(os.sched_getaffinity(0))})),
            ("oom", lambda: open(f"/proc/{pid}/oom_score_adj", "w").write("1000")),
        ):
            try:
                attempt()
                done.append(name)
            except OSError:
                pass
    print(done)
    """
    innocent = """
    import os
    x = bytearray(100 * 1024 * 1024)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    print(os.getpriority(os.PRIO_PROCESS, 0), len(os.sched_getaffinity(0)), pid > 0)
    """
    assert run_one(one_server, attack).stdout.strip() == "[]"
    result = run_one(one_server, innocent)
    assert result.verdict == "wrong_answer"  # ran: printed something unexpected
    assert result.stdout.split() == ["0", str(len(os.sched_getaffinity(0))), "True"]


def test_nothing_a_test_leaves_in_tmp_or_dev_shm_reaches_the_next(one_server):
    leave = """
    import os
    for place in ("/tmp", "/dev/shm"):
        open(f"{place}/left-behind", "w").write("secret")
        os.chdir(place)
        for _ in range(2000):
            os.mkdir("deep")
            os.chdir("deep")
        os.chmod(f"{place}/deep", 0)
    print("left")
    """
    look = """
    import os
    print(sorted(os.listdir("/tmp")), os.listdir("/dev/shm"))
    """
    assert run_one(one_server, leave).stdout == "left\n"
    # Besides the working directory, only what leads to this Python, if it lies in /tmp.
    from sandbox.client import _library_paths, _python_paths

    ours = (os.path.realpath(path) for path in (*_python_paths(), *_library_paths()))
    kept = {Path(path).parts[2] for path in ours if path.startswith("/tmp/")}
    assert run_one(one_server, look).stdout == f"{sorted({'test', *kept})} []\n"


def test_a_test_that_fills_tmp_does_not_fail_the_next(one_server):
    fill = """
    chunk = b"x" * (1 << 20)
    for place in ("/tmp", "/dev/shm"):
        try:
            for index in range(1000):  # files of 1 MB: each under the file size limit
                with open(f"{place}/fill-{index}", "wb") as f:
                    f.write(chunk)
        except OSError as exc:
            print(place, "full", exc.errno)
    """
    write = """
    for place in ("/tmp", "/dev/shm"):
        with open(f"{place}/small", "wb") as f:
            f.write(b"y" * (1 << 20))
    print("ok")
    """
    config = SandboxConfig(workers=1, max_file_mb=4)  # 16 MB of /tmp, filled quickly
    with Sandbox(config) as box:
        if not box.isolation["namespaces"]:
            pytest.skip(NAMESPACES)
        assert run_one(box, fill, time_limit_s=5).stdout == "/tmp full 28\n/dev/shm full 28\n"
        assert run_one(box, write).stdout == "ok\n"


def _sysv_segments() -> set[str]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {" ".join(line.split()[:2]) for line in lines}


def test_sysv_shared_memory_goes_with_the_test(one_server):
    program = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    ident = libc.shmget(0, 64 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    address = libc.shmat(ident, None, 0)
    ctypes.memset(address, 1, 64 << 20)
    print(ident >= 0)
    """
    before = _sysv_segments()
    assert run_one(one_server, program, memory_mb=1024).stdout == "True\n"
    assert _sysv_segments() == before
    look = "print(open('/proc/sysvipc/shm').read().count(chr(10)))"
    assert run_one(one_server, look).stdout == "1\n"  # the header line alone


NO_MEMORY_CGROUP = "no memory cgroup here (not root, or no memory controller handed down)"


def _memory_hogs(children: int, megabytes: int) -> str:
    """A program whose `children` processes each touch `megabytes` MB and hold it a while;
    prints the exit statuses the parent saw."""
    return f"""
    import os, time
    children = []
    for _ in range({children}):
        pid = os.fork()
        if pid == 0:
            block = bytearray({megabytes} << 20)
            block[::4096] = b"x" * len(block[::4096])  # every page, really in memory
            time.sleep(1)
            os._exit(0)
        children.append(pid)
    print([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children])
    """


@pytest.mark.parametrize("isolation", ["auto", "none"])
def test_the_memory_limit_holds_for_a_tests_whole_process_tree(isolation):
    with Sandbox(SandboxConfig(workers=1, isolation=isolation)) as box:
        if box.isolation["memory_cap"] != "cgroup":
            pytest.skip(NO_MEMORY_CGROUP)
        # Four processes of 150 MB, each under a limit of 256 MB, together over it.
        over = run_one(box, _memory_hogs(4, 150), "", "[0, 0, 0, 0]", memory_mb=256)
        assert over.verdict == "memory_exceeded"
        under = run_one(box, _memory_hogs(4, 30), "", "[0, 0, 0, 0]", memory_mb=256)
        assert under.verdict == "passed"


def test_what_a_test_keeps_in_tmp_counts_as_its_memory(one_server):
    """/tmp and /dev/shm are memory: what is written there is charged to the test."""
    if one_server.isolation["memory_cap"] != "cgroup":
        pytest.skip(NO_MEMORY_CGROUP)
    program = """
    for index in range(6):  # 6 files of 60 MB, each under the file size limit
        place = ("/tmp", "/dev/shm")[index % 2]
        with open(f"{place}/big-{index}", "wb") as f:
            f.write(b"x" * (60 << 20))
    print("written")
    """
    assert run_one(one_server, program, memory_mb=128, time_limit_s=5).verdict == (
        "memory_exceeded"
    )
    assert run_one(one_server, program, memory_mb=1024, time_limit_s=5).stdout == "written\n"


def test_a_self_kill_is_not_taken_for_another_tests_memory_death(one_server):
    """The OOM killer ends a test of another sandbox meanwhile: this test's SIGKILL is
    still its own doing (the count that tells is its cgroup's, not the machine's)."""
    if one_server.isolation["memory_cap"] != "cgroup":
        pytest.skip(NO_MEMORY_CGROUP)
    suicide = "import os, signal, time\ntime.sleep(0.3)\nos.kill(os.getpid(), signal.SIGKILL)"
    with Sandbox(SandboxConfig(workers=1)) as other:
        hog = threading.Thread(
            target=lambda: [run_one(other, _memory_hogs(4, 100), memory_mb=128) for _ in range(3)]
        )
        hog.start()
        verdicts = [run_one(one_server, suicide).verdict for _ in range(4)]
        hog.join()
        assert run_one(other, _memory_hogs(4, 100), memory_mb=128).verdict == "memory_exceeded"
    assert verdicts == ["runtime_error"] * 4


def test_a_lower_memory_limit_right_after_sysv_memory_does_not_break_the_server(one_server, capfd):
    """The kernel frees a test's SysV segments a moment after its IPC namespace; lowering
    the cgroup's limit meanwhile fails with EBUSY: the server waits instead of dying."""
    if one_server.isolation["memory_cap"] != "cgroup":
        pytest.skip(NO_MEMORY_CGROUP)
    program = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    for _ in range(8):
        ident = libc.shmget(0, 50 << 20, 0o1600)
        address = libc.shmat(ident, None, 0)
        ctypes.memset(address, 1, 50 << 20)
        libc.shmdt(ctypes.c_void_p(address))
    print("done")
    """
    pid = one_server._servers[0].process.pid
    for _ in range(3):
        assert run_one(one_server, program, "", "done", memory_mb=1024).verdict == "passed"
        assert run_one(one_server, "print(6 * 7)", "", "42", memory_mb=64).verdict == "passed"
    assert one_server._servers[0].process.pid == pid
    assert "died" not in capfd.readouterr().err


def test_a_lower_memory_limit_holds_right_after_a_test_that_used_much(one_server):
    if one_server.isolation["memory_cap"] != "cgroup":
        pytest.skip(NO_MEMORY_CGROUP)
    assert run_one(one_server, _memory_hogs(2, 300), memory_mb=1024).stdout == "[0, 0]\n"
    assert run_one(one_server, _memory_hogs(2, 40), memory_mb=64).verdict == "memory_exceeded"
    assert run_one(one_server, "print(6 * 7)", "", "42", memory_mb=64).verdict == "passed"


def test_servers_starting_at_once_all_get_the_process_cap():
    boxes, errors = [], []

    def start():
        try:
            boxes.append(Sandbox(SandboxConfig(workers=2, max_processes=8)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bomb = _fork_bomb(40, 2)
    try:
        assert not errors, errors
        if not boxes[0].isolation["namespaces"]:
            pytest.skip(NAMESPACES)
        cgroups = [server._cgroup for box in boxes for server in box._servers]
        for box in boxes:
            for server in box._servers:
                assert server.isolation["process_cap"] != "none"
            assert int(run_one(box, bomb).stdout) < 8
    finally:
        for box in boxes:
            box.close()
    # Each server had a memory cgroup of its own, and its maker removed it.
    made = [group.path for group in cgroups if group is not None]
    assert len(set(made)) == len(made)
    assert not [path for path in made if os.path.exists(path)]


def test_without_a_process_cap_namespaces_refuses_and_auto_warns(tmp_path):
    """As the host's root inside a user namespace, RLIMIT_NPROC cannot hold tests."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and util-linux unshare")
    done, first, second = _both_isolations_as_root_of_a_user_namespace(tmp_path)
    assert first == ""
    assert second.startswith("1\n")
    assert "tests have NO process cap" in done.stderr
    assert json.loads(second.split("\n", 1)[1])["passed"] is True


SYSTEM_PYTHON = Path("/usr/bin/python3")
PLAIN_UID = 23456


def _as_plain_user(script: str, *wrapper: str) -> subprocess.CompletedProcess:
    """Run `script` with the system Python as a plain user (through `wrapper`, a command
    such as `unshare --user --map-root-user`), on a copy of the package it can read."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not SYSTEM_PYTHON.exists():
        pytest.skip("needs root (to become a plain user), setpriv and /usr/bin/python3")
    where = Path(tempfile.mkdtemp(prefix="rlef-unprivileged-"))  # world-traversable
    try:
        shutil.copytree(Path(__file__).parents[1] / "sandbox", where / "sandbox")
        (where / "run.py").write_text(textwrap.dedent(script))
        for path in (where, *where.rglob("*")):
            path.chmod(0o755)
        become = ["setpriv", f"--reuid={PLAIN_UID}", f"--regid={PLAIN_UID}", "--clear-groups"]
        done = subprocess.run(
            [*become, *wrapper, str(SYSTEM_PYTHON), "run.py"],
            cwd=where,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(where)
    if "cannot isolate tests" in done.stderr and "process cap" not in done.stderr:
        pytest.skip("this kernel refuses user namespaces to plain users")
    return done


def test_unprivileged_a_test_that_lowers_its_servers_limits_gets_it_replaced():
    """Run by a plain user, tests share the server's uid and can reach its limits: the
    server notices and is replaced before the next test."""
    done = _as_plain_user("""
        from sandbox import Job, Sandbox, SandboxConfig, TestSet
        attack = "import resource\\nresource.prlimit(1, resource.RLIMIT_NOFILE, (64, 64))"
        innocent = "files = [open('/dev/null') for _ in range(200)]\\nprint(len(files))"
        with Sandbox(SandboxConfig(isolation="namespaces")) as box:
            print(box.isolation["test_uid"], box.isolation["memory_cap"])
            for program in (attack, innocent):
                job = Job(program, TestSet("stdio", ("",), ("200",)), 5.0, 512)
                print(box.run(job).tests[0].verdict)
        """)
    test_uid, memory_cap, *verdicts = done.stdout.split()
    assert (test_uid, verdicts) == ("None", ["wrong_answer", "passed"]), done.stderr
    assert "changed its fork server's limits" in done.stderr
    assert "Traceback" not in done.stderr
    # A plain user may have no memory cgroup to make: the warning says what that costs.
    assert memory_cap == "cgroup" or "memory limit holds per process only" in done.stderr


def test_unprivileged_a_test_that_starves_its_server_gets_one_line_not_a_traceback():
    """A plain user's tests can lower their server's limits so far that it cannot run the
    next step: it says so in one line and is replaced, the test run again (and judged a
    runtime error when it breaks the new server too)."""
    done = _as_plain_user("""
        from sandbox import Job, Sandbox, SandboxConfig, TestSet
        starve = "import resource\\nresource.prlimit(1, resource.RLIMIT_NOFILE, (6, 6))"
        innocent = "print(6 * 7)"
        with Sandbox(SandboxConfig(isolation="namespaces")) as box:
            for program in (starve, innocent):
                job = Job(program, TestSet("stdio", ("",), ("42",)), 5.0, 512)
                print(box.run(job).tests[0].verdict)
        """)
    assert done.stdout.split() == ["runtime_error", "passed"], done.stderr
    assert "sandbox: fork server failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_root_of_a_rootless_container_keeps_the_process_cap():
    """Root of a user namespace that a plain user made: not the host's root, so
    RLIMIT_NPROC binds it, and isolation='namespaces' starts with the cap."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    done = _as_plain_user(
        f"""
        from sandbox import Job, Sandbox, SandboxConfig, TestSet
        bomb = {textwrap.dedent(_fork_bomb(40, 2))!r}
        with Sandbox(SandboxConfig(isolation="namespaces", max_processes=8)) as box:
            print(box.isolation["process_cap"])
            print(box.run(Job(bomb, TestSet("stdio", ("",), ("",)), 5.0, 512)).tests[0].stdout)
        """,
        "unshare",
        "--user",
        "--map-root-user",
    )
    cap, started = done.stdout.split()
    assert cap == "rlimit", done.stderr
    assert 0 < int(started) < 8


def test_a_python_in_a_venv_under_tmp_is_whole_inside(tmp_path):
    """The view shows the interpreter's own files even where /tmp is the tests' scratch:
    its executable runs, its site-packages import."""
    top = Path(tempfile.mkdtemp(prefix="rlef-venv-", dir="/tmp"))
    top.chmod(0o755)  # as `python -m venv` makes it: tests run as another uid
    venv = top / "project" / ".venv"  # nested: the directories above it are the server's
    venv.parent.mkdir(mode=0o755)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        python = venv / "bin" / "python"
        purelib = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        (Path(purelib) / "rlef_probe.py").write_text("VALUE = 42\n")
        program = (
            "import subprocess, sys, rlef_probe\n"
            "ran = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True)\n"
            "print(sys.executable, rlef_probe.VALUE, ran.stdout.decode().strip())"
        )
        script = (
            "from sandbox import Job, Sandbox, TestSet\n"
            "with Sandbox() as box:\n"
            f"    job = Job({program!r}, TestSet('stdio', ('', ''), ('', '')), 5.0, 512)\n"
            "    for result in box.run(job).tests:  # the second after the first's cleanup\n"
            "        print(box.isolation['namespaces'], result.stdout, result.stderr)\n"
        )
        done = subprocess.run(
            [python, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])},
        )  # fmt: skip
    finally:
        shutil.rmtree(top)
    if not done.stdout.startswith("True"):
        pytest.skip(NAMESPACES)
    line = f"True {python} 42 42"
    printed = [text.strip() for text in done.stdout.splitlines() if text.startswith("True")]
    assert printed == [line, line], done.stdout + done.stderr


@pytest.mark.parametrize(
    "program",
    [
        "import os\nos._exit = lambda status: None\nos.close = lambda fd: None\nprint('patched')",
        "import os, shutil\nfor name in os.listdir('/tmp'):\n    shutil.rmtree('/tmp/' + name)",
        "import os\nfor _ in range(2000):\n    os.mkdir('d')\n    os.chdir('d')",
        textwrap.dedent("""
        import os
        parent, name = os.path.split(os.getcwd())
        stem, _, number = name.rpartition("-")
        for step in (1, 2, 3):  # the next tests' directories, if they are numbered
            taken = f"{stem}-{int(number) + step}" if number.isdigit() else name
            os.makedirs(os.path.join(parent, taken), 0, exist_ok=True)
        """),
        textwrap.dedent("""
        import os
        open("/tmp/.emptied-1", "w").close()  # the name cleanup moves a nested directory to
        os.makedirs("/tmp/a/b")
        for index in range(3):
            with open(f"/tmp/a/b/f{index}", "wb") as f:
                f.write(b"x" * (20 << 20))
        """),
        textwrap.dedent("""
        import os
        os.chdir("/")
        os.rename("/tmp/test", "/tmp/old")
        open("/tmp/.emptied-1", "w").close()
        os.makedirs("/tmp/test/b")  # the next test's working directory, taken
        """),
    ],
    ids=[
        "patched-exit-and-close",
        "tmp-removed",
        "2000-levels",
        "next-directory-taken",
        "cleanup-names-taken",
        "working-directory-taken",
    ],
)
def test_no_program_breaks_its_servers_cleanup(one_server, program, capfd):
    server = one_server._servers[0]
    pid = server.process.pid
    look = "import os\nprint(sorted(os.listdir('/tmp')), os.listdir('/dev/shm'), os.getcwd())"
    clean = run_one(one_server, look).stdout
    run_one(one_server, program)
    assert run_one(one_server, look).stdout == clean  # nothing left for the next test
    assert run_one(one_server, "print(6 * 7)", "", "42").verdict == "passed"
    assert server.process.pid == pid  # the same server: nothing crashed, none restarted
    assert "Traceback" not in capfd.readouterr().err


def test_cpu_time_of_children_never_waited_for_counts():
    program = """
    import os, time
    children = []
    for _ in range(4):
        pid = os.fork()
        while pid == 0:  # a child: spin
            pass
        children.append(pid)
    def cpu_s(pid):  # utime + stime, in clock ticks
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    while sum(map(cpu_s, children)) < 1.5:  # little CPU of its own, however loaded
        time.sleep(0.05)
    print("done")  # and exits, its children never waited for
    """
    # Wall time to spare: on a loaded machine the children take a while to spin 1.5 s.
    with Sandbox(SandboxConfig(workers=1, wall_time_grace_s=30.0)) as box:
        result = run_one(box, program, "", "done", time_limit_s=1.0)
        assert result.verdict == "timeout" and result.stdout == "done\n"  # not the wall clock
        assert run_one(box, program, "", "done", time_limit_s=5.0).verdict == "passed"


def test_a_test_cannot_make_more_files_than_the_server_can_quickly_remove(one_server):
    program = """
    import os
    made = 0
    try:
        while True:
            os.mkdir(f"/tmp/d{made}")
            made += 1
    except OSError as exc:
        print(made, exc.errno)
    """
    made, error = run_one(one_server, program, time_limit_s=10).stdout.split()
    assert int(error) == 28 and int(made) < 70_000  # ENOSPC: out of inodes
    assert run_one(one_server, "print(6 * 7)", "", "42").verdict == "passed"


def test_kernel_keyrings_are_out_of_a_tests_reach(one_server):
    """Keyrings belong to a uid, not a namespace: a key would outlive the test."""
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("the keyring filter knows x86_64 and aarch64")
    program = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    number = {"x86_64": 248, "aarch64": 217}[__import__("os").uname().machine]  # add_key
    added = libc.syscall(number, b"user", b"rlef-key", b"secret", 6, -4)  # the user keyring
    print(added, ctypes.get_errno())
    """
    assert run_one(one_server, program).stdout == "-1 1\n"  # EPERM
    users = Path("/proc/key-users").read_text()
    assert f"{one_server.isolation['test_uid']}:" not in users


def test_a_test_cannot_make_a_user_namespace_of_its_own(one_server):
    """In one it would have capabilities: a network namespace with loopback up, whose TCP
    buffers no memory cgroup counts, mounts, more of the kernel."""
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("the syscall filter knows x86_64 and aarch64")
    program = """
    import ctypes, os, subprocess, threading
    libc = ctypes.CDLL(None, use_errno=True)
    refused = libc.unshare(0x10000000 | 0x40000000)  # CLONE_NEWUSER | CLONE_NEWNET
    print(refused, ctypes.get_errno())
    done = subprocess.run(["unshare", "--user", "true"], capture_output=True)
    print(done.returncode != 0)
    # What the C library does with clone3 refused (ENOSYS): threads and processes as ever.
    thread = threading.Thread(target=print, args=("thread",))
    thread.start()
    thread.join()
    print(subprocess.run(["echo", "child"], capture_output=True, text=True).stdout.strip())
    """
    assert run_one(one_server, program).stdout == "-1 1\nTrue\nthread\nchild\n"


def test_a_server_killed_while_idle_is_replaced_for_the_next_job(caplog):
    with Sandbox(SandboxConfig(workers=1)) as box:
        server = box._servers[0]
        os.kill(server.process.pid, 9)
        time.sleep(0.3)  # gone, and not waited for: its pipes are still open here
        with caplog.at_level(logging.WARNING, logger="sandbox"):
            assert run_one(box, "print(7)", "", "7").verdict == "passed"
    assert "fork server died" in caplog.text


def test_cgroups_that_killed_callers_left_are_removed_and_live_ones_kept():
    from sandbox import cgroup

    made, _ = cgroup.make()
    if made is None:
        pytest.skip(NO_MEMORY_CGROUP)
    parent = os.path.dirname(made.path)
    maker = subprocess.Popen(["true"])
    maker.wait()  # a pid that is not alive now
    namespace = os.stat("/proc/self/ns/pid").st_ino
    abandoned = f"{parent}/{cgroup.NAME_PREFIX}{namespace}-{maker.pid}-0123456789ab"
    elsewhere = f"{parent}/{cgroup.NAME_PREFIX}{namespace + 1}-{maker.pid}-0123456789ab"
    os.mkdir(elsewhere)  # a maker in another PID namespace: its pid tells us nothing
    os.mkdir(abandoned)
    try:
        with Sandbox(SandboxConfig(workers=1)) as box:
            if box.isolation["memory_cap"] != "cgroup":
                pytest.skip(NO_MEMORY_CGROUP)
        assert not os.path.exists(abandoned)
        assert os.path.exists(made.path)  # its maker (this process) is alive
        assert os.path.exists(elsewhere)
    finally:
        cgroup.remove(made)
        for path in (abandoned, elsewhere):
            if os.path.exists(path):
                os.rmdir(path)


def test_descriptors_a_test_parks_in_a_socket_of_its_own_are_freed(one_server):
    """A socket that holds its own descriptors in flight outlives every process of the
    test, with the memfds it carries and an abstract name bound, until the kernel
    collects it: the server has it collected before the next test."""
    park = """
    import array, os, socket
    memfds = []
    for _ in range(4):
        fd = os.memfd_create("parked")
        os.write(fd, b"x" * (60 << 20))
        memfds.append(fd)
    named = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    named.bind("\\0rlef-parked")
    named.listen()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    parked = array.array("i", [*memfds, named.fileno(), a.fileno(), b.fileno()])
    a.sendmsg([b"z"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, parked)])
    print("parked")
    """
    bind = """
    import socket
    kept = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    kept.bind("\\0rlef-parked")
    print(open("/proc/net/unix").read().count(chr(10)))  # the header and this socket
    """
    pid = one_server._servers[0].process.pid
    assert run_one(one_server, park, "", "parked", memory_mb=1024).verdict == "passed"
    assert run_one(one_server, bind, "", "2").verdict == "passed"
    if one_server.isolation["memory_cap"] == "cgroup":
        cgroup = one_server._servers[0]._cgroup.path
        left = int(Path(f"{cgroup}/memory.usage_in_bytes").read_text())
        assert left < 64 << 20, left  # the 240 MB of memfds are not charged any more
    program = "x = bytearray(300 << 20)\nprint(len(x))"
    assert run_one(one_server, program, "", str(300 << 20), memory_mb=512).verdict == "passed"
    assert one_server._servers[0].process.pid == pid
