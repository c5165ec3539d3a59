"""The fork server ("zygote"): an isolated, lean interpreter that forks one process per test.

Started by `sandbox.client.ForkServer` as `python -I -S sandbox/zygote.py CONFIG`, with a
scrubbed environment. It isolates itself (PID, network, mount and IPC namespaces, and a
user namespace unless it runs as root; see `enter_namespaces`), says hello, then for each
request runs one test and answers with how it ended. Requests carry compiled code
objects (marshal), so each program is compiled once, by the caller; judging happens in
the caller too.

Why isolation is built this way:
- Tests run as a uid that owns nothing, not as (a namespace's) root: file modes are then
  what keeps them from the host's kernel settings, devices and their own server, and
  that holds on every kernel, where root inside a user namespace is still the host's
  root for /proc/sys writes and RLIMIT_NPROC. A uid per server gives each server's tests
  an RLIMIT_NPROC of their own with no cgroup to create, share or race for.
- Their file system is a view built once per server (bind mounts into a tmpfs root,
  `pivot_root`), not the host's root made read-only: what is not bound (sockets under
  /run or /var, home directories) does not exist for a test, and the directories above
  the Python installation can be opened by the test uid whatever their modes on the host.
- A test's memory limit covers its process tree by a memory cgroup per server, made by
  the caller (`sandbox.cgroup`) and joined by each test process as it starts (~0.07 ms);
  the server stays outside, so its own memory is not a test's, and the cgroup's OOM-kill
  count tells a memory death of any of the test's processes from another SIGKILL. The
  address-space limit stays as well: per process, it turns most overuse into a
  MemoryError that the program sees, as under `ulimit -v`.
- /tmp and /dev/shm are emptied after each test rather than mounted afresh in a mount
  namespace per test: namespaces and mounts per test serialise servers on the kernel's
  mount lock and cost an RCU grace period each (measured: 212 instead of 511 tests/s
  with 2 servers); an IPC namespace per test costs ~0.1 ms and takes SysV memory with it.

It imports only modules built into the interpreter (and ctypes), because fork() costs
time in proportion to the forking process's memory: ~0.5 ms from this lean process
against ~1.6 ms from one that has imported `json`, `dataclasses` and friends.

Wire format, both ways: a 4-byte little-endian length, then a marshal-ed dict.
"""

import atexit
import builtins
import ctypes
import errno
import marshal
import os
import resource
import select
import signal
import sys
import time
import types

PROGRAM_FILE = "solution.py"
"""The program's file name in tracebacks; it is written to the test's directory, so
tracebacks show source lines."""
TEST_FILE = "test.py"
"""An assertion script's file name in tracebacks (it is not on disk: programs could read it)."""
REPORT_FD = 3
"""A test process's descriptor (closed on exec) on which it reports how the program ended:
OUT_OF_MEMORY, and COMPLETED once every code object (the program, then an assertion
script) ran to its end, which an early `exit(0)` or `os._exit(0)` never reaches."""
OUT_OF_MEMORY = b"m"
"""A MemoryError, or an OSError ENOMEM (an mmap over the limit), ended the program."""
COMPLETED = b"c"
INTERNAL_ERROR_EXIT = 70
"""Exit status of a test process that the sandbox itself failed to set up."""
DEFAULT_STACK_BYTES = 8 << 20
"""A test's stack limit when the server's is unlimited (glibc's default thread stack)."""
READ_CHUNK = 1 << 16
LIMIT_RETRY_S = 2.0
"""How long lowering a cgroup's memory limit is retried while memory is being freed."""
FRAME_HEADER = 4

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
SYS_MOUNT_SETATTR = 442  # the same on x86_64 and in the generic table (arm64)
PIVOT_ROOT_SYSCALLS = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
X32 = 0x40000000
"""x86_64's x32 ABI: the same audit arch, syscall numbers with this bit set."""
REFUSED_SYSCALLS = {
    # machine: (audit arch, keyrings: add_key, request_key, keyctl; clone, unshare; clone3)
    "x86_64": (0xC000003E, (248, 249, 250), (56, 272), 435),
    "aarch64": (0xC00000B7, (217, 218, 219), (220, 97), 435),
}
"""What the seccomp filter refuses (`_install_syscall_filter`). Kernel keyrings belong to
a uid and no namespace holds them: a key a test adds would outlive it, for the next test
of its server's uid to read. A user namespace of a test's own would give it capabilities
there (a network namespace with loopback up, mounts): memory that its cgroup does not
count (TCP buffers) and more kernel surface; clone and unshare are refused it, and clone3,
whose flags seccomp cannot read, fails with ENOSYS, so that the C library falls back to
clone."""
AF_UNIX = 1
SOCK_DGRAM = 2
UNIX_GC_WAIT_S = 1.0
"""How long the sockets that only in-flight messages keep alive may take to be collected."""
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
LINUX_CAPABILITY_VERSION_3 = 0x20080522

TEST_UID_BASE = 0x60000000
"""As root, tests run as host uid and gid TEST_UID_BASE + the fork server's pid: no user
or file on the host has it, and each live server has its own, so RLIMIT_NPROC counts
one server's tests and no test can touch another server or its own."""
HOST_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
"""Host directories in the tests' root view (read-only), with this Python's own."""
DEVICES = ("null", "zero", "full", "random", "urandom")
DEVICE_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}
RLIMITS = tuple(name for name in dir(resource) if name.startswith("RLIMIT_"))
READONLY_PROC = ("sys", "sysrq-trigger")
"""Kernel settings under /proc that a fresh proc mount would leave writable to root."""
SCRATCH_INODES = 65536
"""Files and directories a test may make in each of /tmp and /dev/shm: enough for any
program, and few enough to empty in about a second (millions took 10 s and more)."""
SCRATCH_MOUNTS = ("/tmp", "/dev/shm")
"""The tests' writable places: tmpfs mounts of the fork server's, emptied after each test."""
WORKDIR = "/tmp/test"
"""A test's working directory (HOME and TMPDIR too), with namespaces."""

_libc = ctypes.CDLL(None, use_errno=True)
_exit = os._exit
"""Bound here: a program that replaces `os._exit` must not keep its process alive."""
_libc.syscall.restype = ctypes.c_long


class IsolationError(OSError):
    """The kernel refused a namespace, mount or setting that isolation needs."""


# --- wire format ---------------------------------------------------------------------


def send(fd, message):
    data = marshal.dumps(message)
    data = len(data).to_bytes(FRAME_HEADER, "little") + data
    while data:
        data = data[os.write(fd, data) :]


def receive(fd):
    """The next message on `fd`, or None at end of file."""
    header = _read_exactly(fd, FRAME_HEADER)
    if header is None:
        return None
    return marshal.loads(_read_exactly(fd, int.from_bytes(header, "little")))


def _read_exactly(fd, size):
    parts, missing = [], size
    while missing:
        data = os.read(fd, missing)
        if not data:
            return None
        parts.append(data)
        missing -= len(data)
    return b"".join(parts)


# --- isolation -----------------------------------------------------------------------


def _check(result, what):
    if result == -1:
        err = ctypes.get_errno()
        raise IsolationError(err, f"{what}: {os.strerror(err)}")


def _prctl(option, value):
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def _unshare(flags):
    try:
        unshare = _libc.unshare
    except AttributeError:
        raise IsolationError(errno.ENOSYS, "unshare: not available on this system") from None
    _check(unshare(ctypes.c_int(flags)), "unshare")


def _mount(source, target, fstype, flags, data=""):
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode(),
            ctypes.c_ulong(flags),
            data.encode() or None,
        ),
        f"mount {fstype} on {target}",
    )


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("set", "clear", "propagation", "userns")]


def _make_tree_readonly(path):
    """Make `path` and every mount below it read-only, in this mount namespace."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    _check(
        _libc.syscall(
            ctypes.c_long(SYS_MOUNT_SETATTR),
            ctypes.c_int(AT_FDCWD),
            path.encode(),
            ctypes.c_uint(AT_RECURSIVE),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        ),
        f"mount_setattr read-only {path}",
    )


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _install_syscall_filter(report):
    """Refuse what `REFUSED_SYSCALLS` lists, and every syscall of another ABI (i386 on
    x86_64), for us and every test we fork (a seccomp filter, inherited: no cost per
    test); a warning where the numbers are unknown."""
    machine = os.uname().machine
    known = REFUSED_SYSCALLS.get(machine)
    if known is None:
        report["warnings"].append(
            "tests can keep keys in the kernel's keyrings and make user namespaces "
            "(no syscall filter for this machine)"
        )
        return
    arch, keyrings, namespacing, clone3 = known
    extra_abi = X32 if machine == "x86_64" else 0
    load, jump_equal, jump_set, give = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, JEQ, JSET, RET
    refuse = SECCOMP_RET_ERRNO | errno.EPERM
    program = [
        (load, 0, 0, 4),  # seccomp_data.arch
        (jump_equal, 1, 0, arch),
        (give, 0, 0, refuse),  # another ABI: none of its calls
        (load, 0, 0, 0),  # seccomp_data.nr
    ]
    for base in {0, extra_abi}:
        for number in keyrings:
            program += [(jump_equal, 0, 1, base + number), (give, 0, 0, refuse)]
        program += [
            (jump_equal, 0, 1, base + clone3),
            (give, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
        ]
        for number in namespacing:
            program += [
                (jump_equal, 0, 4, base + number),
                (load, 0, 0, 16),  # the flags: args[0], low 32 bits
                (jump_set, 0, 1, CLONE_NEWUSER),
                (give, 0, 0, refuse),
                (give, 0, 0, SECCOMP_RET_ALLOW),
            ]
    program.append((give, 0, 0, SECCOMP_RET_ALLOW))
    filters = (_SockFilter * len(program))(*(_SockFilter(*step) for step in program))
    fprog = _SockFprog(len(program), filters)
    mode, unused = ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.c_ulong(0)
    _check(_libc.prctl(PR_SET_SECCOMP, mode, ctypes.byref(fprog), unused, unused), "seccomp")


def _drop_capabilities():
    """Give up every capability for good: for this process, its children and what they exec."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    data = (_CapData * 2)()
    _check(
        _libc.capset(ctypes.byref(_CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), ctypes.byref(data)),
        "capset",
    )


def _write_file(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _bind(source, target, flags=0):
    _mount(source, target, "", MS_BIND | MS_REC | flags)


def _make_parents(root, path):
    """Create the directories of `path` (absolute) under `root`, world-traversable."""
    current = root
    for part in path.strip("/").split("/")[:-1]:
        current = f"{current}/{part}"
        if not os.path.lexists(current):
            os.mkdir(current, 0o755)


def _show(root, path, bound, depth=0):
    """Make `path` of the host resolve under `root` as it does on the host.

    Symbolic links along it are recreated, the directory or file it names is bound (with
    the mounts below it); a path under one already bound is left alone.
    """
    parts = path.strip("/").split("/")
    current = ""
    for index, part in enumerate(parts):
        current = f"{current}/{part}"
        if any(current == done or current.startswith(done + "/") for done in bound):
            return
        if not os.path.lexists(current):
            return
        if os.path.islink(current):
            if depth > 40:
                return
            link = os.readlink(current)
            if not os.path.lexists(root + current):
                _make_parents(root, current)
                os.symlink(link, root + current)
            rest = "/".join(parts[index + 1 :])
            target = os.path.normpath(os.path.join(os.path.dirname(current), link))
            _show(root, f"{target}/{rest}" if rest else target, bound, depth + 1)
            return
    _make_parents(root, current)
    if os.path.isdir(current):
        if not os.path.isdir(root + current):
            os.mkdir(root + current, 0o755)
    elif not os.path.exists(root + current):
        os.close(os.open(root + current, os.O_WRONLY | os.O_CREAT, 0o644))
    _bind(current, root + current)
    bound.append(current)


def _pivot_root(new_root):
    """Make `new_root` this mount namespace's root and detach the old one."""
    number = PIVOT_ROOT_SYSCALLS.get(os.uname().machine)
    if number is None:
        raise IsolationError(errno.ENOSYS, f"pivot_root: unknown on {os.uname().machine}")
    os.chdir(new_root)
    # pivot_root(".", "."): the old root ends up stacked on the new one, then goes.
    _check(_libc.syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", ctypes.c_int(MNT_DETACH)), "umount the old root")
    os.chdir("/")


def _build_root_view(new_root, paths, scratch_mb, report):
    """Mount, at `new_root`, the file system tests see, and move into it.

    A small tmpfs holds: the host's system directories and this Python's files, bound at
    their own paths (nothing else of the host: no /home, /root, /run, /var, no socket
    file), a fresh /proc (with /proc/sys and /proc/sysrq-trigger read-only), a /dev of
    null, zero, full, random, urandom and the fd links, all of it read-only; and /tmp and
    /dev/shm, tmpfs mounts of our own that are emptied after every test.
    """
    _mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    bound = []
    in_scratch = set()
    # Directories before links to them (/usr before /lib -> usr/lib), shortest first.
    for path in sorted(set(paths), key=lambda path: (os.path.islink(path), len(path), path)):
        if not path.startswith("/"):
            continue
        real = os.path.realpath(path)
        if any(real == top or real.startswith(top + "/") for top in SCRATCH_MOUNTS):
            if os.path.isdir(real):
                in_scratch.add(real)
            continue
        _show(new_root, path, bound)
    under_scratch = []
    for real in sorted(in_scratch, key=len):
        if not any(real == done or real.startswith(done + "/") for done in under_scratch):
            under_scratch.append(real)
    for top in ("/tmp", "/dev", "/proc"):
        if not os.path.isdir(new_root + top):
            os.mkdir(new_root + top, 0o755)
    _mount("tmpfs", new_root + "/dev", "tmpfs", MS_NOSUID, "size=64k,mode=0755")
    for device in DEVICES:
        if os.path.exists(f"/dev/{device}"):
            os.close(os.open(f"{new_root}/dev/{device}", os.O_WRONLY | os.O_CREAT, 0o666))
            _bind(f"/dev/{device}", f"{new_root}/dev/{device}")
    for name, target in DEVICE_LINKS.items():
        os.symlink(target, f"{new_root}/dev/{name}")
    os.mkdir(f"{new_root}/dev/shm", 0o755)
    proc = f"{new_root}/proc"
    try:
        _mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        report["private_proc"] = True
    except IsolationError as exc:
        report["warnings"].append(f"tests can list the host's processes in /proc ({exc})")
        _bind("/proc", proc)
    for entry in READONLY_PROC:
        if os.path.exists(f"{proc}/{entry}"):
            _bind(f"{proc}/{entry}", f"{proc}/{entry}")
            _remount_readonly(f"{proc}/{entry}", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    try:
        _make_tree_readonly(new_root)
        report["readonly_root"] = True
    except IsolationError as exc:
        report["warnings"].append(f"the file system stays writable to tests ({exc})")
    # Mounted after the tree went read-only, so that these two stay writable.
    for top in SCRATCH_MOUNTS:
        options = f"size={scratch_mb}m,nr_inodes={SCRATCH_INODES},mode=1777"
        _mount("tmpfs", new_root + top, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for real in under_scratch:
        _make_parents(new_root, real)
        os.mkdir(new_root + real, 0o755)
        _bind(real, new_root + real)
        _remount_readonly(new_root + real)
    _pivot_root(new_root)
    # The directories above those libraries: emptied after each test, never moved away.
    return {parent for real in under_scratch for parent in _parents_in_scratch(real)}


def _parents_in_scratch(path):
    """The directories between a scratch mount and `path`, e.g. /tmp/a for /tmp/a/b."""
    parts = path.strip("/").split("/")
    return {"/" + "/".join(parts[:end]) for end in range(2, len(parts))}


def _remount_readonly(path, locked=0):
    """Make the mount at `path` read-only; `locked`: its flags a user namespace must keep."""
    _mount("none", path, "", MS_BIND | MS_REMOUNT | MS_RDONLY | locked)


def _mapped(kind, number):
    """Whether `number` is a uid (kind 'uid') or gid of this process's user namespace."""
    with open(f"/proc/self/{kind}_map") as lines:
        for line in lines:
            inside, _, count = map(int, line.split())
            if inside <= number < inside + count:
                return True
    return False


def _in_a_child(probe):
    """The exit status of a child process that runs `probe()` and exits with what it
    returns (INTERNAL_ERROR_EXIT if it raised): a try that must not change us."""
    pid = os.fork()
    if pid == 0:
        status = INTERNAL_ERROR_EXIT
        try:
            status = probe()
        finally:
            _exit(status)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _fork_capped_at_one():
    """0 if a process allowed one process of its uid cannot fork, else 1."""
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
        child = os.fork()
    except OSError:
        return 0  # refused: the cap holds
    if child == 0:
        _exit(0)
    os.waitpid(child, 0)
    return 1


def _process_cap_holds():
    """Whether RLIMIT_NPROC binds our uid: the kernel exempts the host's root, in any user
    namespace, and from inside one nothing tells whose uid its root is (a rootless
    container's is a plain user's). Tried: a child allowed one process forks once more."""
    return _in_a_child(_fork_capped_at_one) == 0


def enter_namespaces(config, control_fds):
    """Become PID 1 of fresh namespaces inside the tests' root view; return the report.

    As root (of a user namespace that maps the tests' uid: the host's, normally), this
    process unshares PID, network, mount and IPC namespaces directly, and tests will run
    as an unprivileged uid of their own (`TEST_UID_BASE` + this process's pid).
    Otherwise (or as root where the kernel refuses that, e.g. in a container without
    CAP_SYS_ADMIN) it first unshares a user namespace mapping its own
    uid and gid to the namespace's root (the kernel ids stay ours, so files keep their
    owners, and RLIMIT_NPROC counts this namespace alone), and tests share its uid. Then
    it forks: the child is PID 1 of the new PID namespace (the kernel kills everything in
    it when it dies, and ignores signals to it from inside), builds the root view
    (`_build_root_view`) and returns. The parent only waits for the child and exits with
    its status, after closing `control_fds` so that the child alone holds the caller's
    pipes. Raises IsolationError before forking when the kernel refuses.
    """
    report = {
        "namespaces": True,
        "readonly_root": False,
        "private_proc": False,
        "process_cap": "rlimit",
        "test_uid": None,
        "warnings": [],
    }
    uid, gid = os.geteuid(), os.getegid()
    rest = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC
    try:
        test_uid = TEST_UID_BASE + os.getpid()
        if uid == 0 and _mapped("uid", test_uid) and _mapped("gid", test_uid):
            try:
                _unshare(rest)
                report["test_uid"] = test_uid
            except IsolationError:
                pass
        if report["test_uid"] is None:
            _unshare(CLONE_NEWUSER)
            _write_file("/proc/self/setgroups", "deny")
            _write_file("/proc/self/uid_map", f"0 {uid} 1")
            _write_file("/proc/self/gid_map", f"0 {gid} 1")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            if not _process_cap_holds():
                report["process_cap"] = "none"
            _unshare(rest)
    except OSError as exc:
        if isinstance(exc, IsolationError):
            raise
        raise IsolationError(exc.errno or errno.EPERM, f"{exc.filename}: {exc.strerror}") from None
    pid = os.fork()
    if pid:
        for fd in control_fds:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _mount("none", "/", "", MS_REC | MS_PRIVATE)
    paths = [*HOST_SYSTEM_PATHS, *sys.path, *config["python_paths"], *config["library_paths"]]
    report["keep_in_scratch"] = _build_root_view(
        config["scratch"], paths, config["max_file_mb"] * 4, report
    )
    _install_syscall_filter(report)
    # Tests of a user namespace share our uid; not being dumpable keeps them from ptrace.
    _prctl(PR_SET_DUMPABLE, 0)
    return report


def _isolate(config, control_fds):
    """Enter the namespaces, or with `isolation` 'none' (asked for, or the caller's fallback
    after a refusal) only keep the orphans of tests; the isolation report."""
    if config["isolation"] != "none":
        return enter_namespaces(config, control_fds)
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of tests come back to us, to be reaped
    except (IsolationError, AttributeError):
        pass
    reason = config["refused"] or "sandbox.isolation is 'none'"
    warning = (
        f"{reason}: tests run WITHOUT network isolation, with a writable file system, "
        "no process cap, and processes that leave their session may outlive a test"
    )
    return {
        "namespaces": False,
        "readonly_root": False,
        "private_proc": False,
        "process_cap": "none",
        "test_uid": None,
        "warnings": [warning],
    }


class MemoryCgroup:
    """The memory cgroup the caller made for this server's tests (`sandbox.cgroup`), by
    descriptors opened while the host's /sys/fs/cgroup is still in view."""

    def __init__(self, files):
        self.version = files["version"]
        self.limit_bytes = None  # as the cgroup starts: unlimited
        self.fds = {}
        try:
            for role, path in files.items():
                if role != "version":
                    flags = os.O_RDONLY if role == "events" else os.O_WRONLY
                    self.fds[role] = os.open(path, flags | os.O_CLOEXEC)
        except OSError:
            self.close()
            raise
        self.kills = self.oom_kills()

    def join(self):
        """Move the calling process (a test process, as it starts) into the cgroup."""
        os.write(self.fds["procs"], b"0")

    def set_limit(self, memory_bytes):
        """Bound the memory of the processes in the cgroup, swap included. Lowering it
        fails while the cgroup holds more that cannot be reclaimed (a test's SysV memory
        is freed a moment after its IPC namespace): retried for `LIMIT_RETRY_S`, then
        IsolationError."""
        if memory_bytes == self.limit_bytes:
            return
        value = str(memory_bytes).encode()
        if "swap_limit" not in self.fds:
            writes = [("limit", value)]
        elif self.version == 2:
            writes = [("limit", value), ("swap_limit", b"0")]  # v2: swap alone
        elif self.limit_bytes is None or memory_bytes < self.limit_bytes:
            writes = [("limit", value), ("swap_limit", value)]  # v1: never above memory+swap
        else:
            writes = [("swap_limit", value), ("limit", value)]
        for role, data in writes:
            self._write(role, data)
        self.limit_bytes = memory_bytes

    def _write(self, role, data):
        deadline = time.monotonic() + LIMIT_RETRY_S
        pause = 0.001
        while True:
            try:
                os.write(self.fds[role], data)
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise IsolationError(
                        exc.errno, f"cannot set the tests' memory limit: {exc.strerror}"
                    ) from None
            time.sleep(pause)
            pause = min(2 * pause, 0.1)

    def oom_kills(self):
        """How many of the cgroup's processes the kernel's OOM killer has killed."""
        return _counter(os.pread(self.fds["events"], READ_CHUNK, 0), b"oom_kill ")

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}


def _open_memory_cgroup(config):
    """The caller's memory cgroup for our tests, opened before isolation hides it; or
    None and why there is none."""
    if config["memory_cgroup"] is None:
        return None, config["memory_cgroup_missing"]
    try:
        return MemoryCgroup(config["memory_cgroup"]), ""
    except OSError as exc:
        return None, f"cannot open {exc.filename}: {exc.strerror}"


def _check_memory_cgroup(cgroup, reason, report):
    """The tests' memory cgroup once a process forked as a test is has joined it, or None;
    the report says which, and why a test's memory limit would hold per process only."""
    if cgroup is not None:

        def join():
            try:
                cgroup.join()
                return 0
            except OSError as exc:
                return exc.errno or errno.EPERM

        refused = _in_a_child(join)
        if refused:
            reason = f"joining it: {os.strerror(refused)}"
            cgroup.close()
            cgroup = None
    report["memory_cap"] = "cgroup" if cgroup is not None else "rlimit"
    if cgroup is None:
        report["warnings"].append(
            f"no memory cgroup ({reason}): a test's memory limit holds per process only, "
            "so its processes together may use more"
        )
    return cgroup


# --- running one test ----------------------------------------------------------------


class Zygote:
    """Runs one test per request; lives in the isolated process."""

    def __init__(self, config, isolation, keep_in_scratch, cgroup):
        self.cgroup = cgroup
        self.namespaced = isolation["namespaces"]
        self.keep_in_scratch = keep_in_scratch
        self.test_uid = isolation["test_uid"]
        self.scratch = config["scratch"]
        if isolation["process_cap"] == "none":
            self.nproc = None
        elif self.test_uid is not None:
            self.nproc = config["max_processes"]  # the uid's processes: the test's alone
        else:
            # Counted per user namespace: the test's processes, us and our parent.
            self.nproc = config["max_processes"] + 2
        self.count = 0
        self.settings = _own_settings()
        # What the scratch mounts hold between tests: the directories leading to libraries.
        self.scratch_between_tests = {
            top: set(os.listdir(top)) for top in (SCRATCH_MOUNTS if self.namespaced else ())
        }
        self.replaced_stdio = ()
        # Made once here, so test processes need not build their own: fds 0-2 are
        # replaced under them in each test process before use.
        # As CPython makes them in a UTF-8 locale: no newline translation on either side.
        self.stdio = (
            open(0, encoding="utf-8", errors="surrogateescape", newline="\n", closefd=False),
            open(1, "w", encoding="utf-8", errors="surrogateescape", newline="\n", closefd=False),
            open(
                2,
                "w",
                encoding="utf-8",
                errors="backslashreplace",
                newline="\n",
                buffering=1,  # line-buffered, as CPython's stderr
                closefd=False,
            ),
        )
        self.oom_kills = _oom_kills()
        # Where test processes say how their program ended; drained after every test.
        self.report_r, self.report_w = os.pipe()
        os.set_blocking(self.report_r, False)

    def run(self, request):
        """Run one test as `request` describes; return how it ended (raw, unjudged)."""
        self.count += 1
        if self.namespaced:
            workdir = WORKDIR
        else:
            workdir = f"{self.scratch}/test-{self.count}-{os.urandom(6).hex()}"
        os.mkdir(workdir, 0o700)
        for name, source in request["files"].items():
            fd = os.open(f"{workdir}/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, source)
            os.close(fd)
            if self.test_uid is not None:
                os.chown(f"{workdir}/{name}", self.test_uid, self.test_uid)
        if self.test_uid is not None:
            os.chown(workdir, self.test_uid, self.test_uid)
        stdin_fd = _memory_file(request["stdin"], self.scratch)
        if self.cgroup is not None:
            self.cgroup.set_limit(request["memory_bytes"])
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self._test_process(request, (stdin_fd, out_w, err_w, self.report_w), workdir)
        for fd in (stdin_fd, out_w, err_w):
            os.close(fd)
        try:
            outcome = _supervise(pid, out_r, err_r, started + request["wall_s"], request)
            outcome["wall_s"] = time.monotonic() - started  # the test's, not our cleanup's
        finally:
            leftover_cpu_s = self._kill_leftovers(pid)
            os.close(out_r)
            os.close(err_r)
            sockets_left = not _collect_unix_garbage(self.namespaced)
            if self.namespaced:
                for top in SCRATCH_MOUNTS:
                    _empty(top, self.keep_in_scratch)
            else:
                _empty(workdir, set())
                _rmdir(workdir)
        report = self._drain_report()
        outcome["completed"] = COMPLETED in report
        outcome["out_of_memory"] = self._ran_out_of_memory(OUT_OF_MEMORY in report, outcome)
        outcome["cpu_s"] += leftover_cpu_s  # the whole tree's, waited for or not
        # Tests that share our uid (in a user namespace) could lower our limits or nice us;
        # and what cleanup could not remove would reach the next test.
        changed = self.test_uid is None and _own_settings() != self.settings
        left = any(
            not set(os.listdir(top)) <= between
            for top, between in self.scratch_between_tests.items()
        )
        outcome["server_changed"] = changed or left or sockets_left
        return outcome

    def _drain_report(self):
        """What the test's processes wrote on REPORT_FD (all of them are gone by now)."""
        parts = []
        while True:
            try:
                parts.append(os.read(self.report_r, READ_CHUNK))
            except BlockingIOError:
                return b"".join(parts)

    def _ran_out_of_memory(self, said, outcome):
        """Whether the program said so before it ended, or the kernel's OOM killer ended
        it or (counted by the memory cgroup, which no other test shares) another of the
        test's processes."""
        if self.cgroup is not None:
            kills = self.cgroup.oom_kills()
            killed, self.cgroup.kills = kills > self.cgroup.kills, kills
            return said or killed
        if said or outcome["signal"] != signal.SIGKILL or outcome["stopped_for"]:
            return said
        # A SIGKILL we did not send: the OOM killer's if its count went up meanwhile.
        kills = _oom_kills()
        killed, self.oom_kills = kills > self.oom_kills, kills
        return killed

    def _kill_leftovers(self, pid):
        """Kill all the test started: our whole PID namespace, or its session. Returns
        the CPU seconds of what we reaped (processes the test never waited for)."""
        cpu_s = 0.0
        if not self.namespaced:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            while True:
                try:
                    reaped, _, usage = os.wait4(-1, os.WNOHANG)
                except ChildProcessError:
                    return cpu_s
                if reaped == 0:
                    return cpu_s
                cpu_s += usage.ru_utime + usage.ru_stime
        # As PID 1 we are immune to kill(-1), and every orphan becomes our child.
        while True:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                return cpu_s
            while True:
                try:
                    _, _, usage = os.wait4(-1, 0)
                except ChildProcessError:
                    break
                cpu_s += usage.ru_utime + usage.ru_stime

    def _test_process(self, request, descriptors, workdir):
        """The forked test process: confine itself, run the program, exit. Never returns."""
        status = INTERNAL_ERROR_EXIT
        try:
            if self.cgroup is not None:
                self.cgroup.join()
            stdin_fd, out_w, err_w, report_w = descriptors
            os.dup2(stdin_fd, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.dup2(report_w, REPORT_FD, inheritable=False)
            os.closerange(REPORT_FD + 1, 1 << 16)
            if self.namespaced:
                # SysV IPC objects the test makes go with its last process.
                _unshare(CLONE_NEWIPC)
                self._drop_privileges()
            os.chdir(workdir)
            os.setsid()
            _set_limits(request, self.nproc)
            os.environ["HOME"] = os.environ["TMPDIR"] = workdir
            signal.signal(signal.SIGINT, signal.default_int_handler)
            # Kept referenced: a stream that is freed flushes, and must not write into the test.
            self.replaced_stdio = (
                sys.stdin,
                sys.stdout,
                sys.stderr,
                sys.__stdin__,
                sys.__stdout__,
                sys.__stderr__,
            )
            sys.stdin, sys.stdout, sys.stderr = self.stdio
            sys.__stdin__, sys.__stdout__, sys.__stderr__ = self.stdio
            status = _run_program(tuple(request["codes"]), self.stdio)
        finally:
            _exit(status)

    def _drop_privileges(self):
        """As root: become the unprivileged test uid. In a user namespace: drop every
        capability. Either way no exec can gain privileges back."""
        uid = self.test_uid
        if uid is None:
            _drop_capabilities()
            return
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to no root: clears every capability
        _prctl(PR_SET_NO_NEW_PRIVS, 1)


def _collect_unix_garbage(namespaced):
    """Have the kernel free the unix sockets that only their own in-flight messages keep
    alive: a test can send a socket's descriptors (memfds with them) to itself and exit,
    and they outlive every process, charged to its memory cgroup, an abstract name still
    bound. The kernel collects such garbage when a unix socket is released: we release
    one, and with namespaces wait until the tests' network namespace holds no socket.
    Whether it holds none (always True without namespaces: nothing tells ours apart)."""
    deadline = time.monotonic() + UNIX_GC_WAIT_S
    while True:
        pair = (ctypes.c_int * 2)()
        if _libc.socketpair(AF_UNIX, SOCK_DGRAM, 0, pair) == 0:
            os.close(pair[0])
            os.close(pair[1])
        if not namespaced:
            return True
        with open("/proc/net/unix", "rb") as table:
            if len(table.read().splitlines()) <= 1:  # the header alone
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def _oom_kills():
    """How many processes the kernel's OOM killer has killed since boot (0 if unknown)."""
    try:
        with open("/proc/vmstat", "rb") as counters:
            return _counter(counters.read(), b"oom_kill ")
    except OSError:
        return 0


def _counter(text, name):
    """The number after `name` at the start of a line of `text` (0 if there is none)."""
    for line in text.splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    return 0


def _own_settings():
    """This process's resource limits, priority and CPUs: what later tests inherit."""
    limits = [resource.getrlimit(getattr(resource, name)) for name in RLIMITS]
    return limits, os.getpriority(os.PRIO_PROCESS, 0), sorted(os.sched_getaffinity(0))


def _memory_file(data, scratch):
    """A readable descriptor, at offset 0, of a nameless file holding `data`."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
    else:
        path = f"{scratch}/stdin"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.unlink(path)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _empty(path, keep):
    """Remove what is in the directory `path`, whatever a test left there: permissions
    taken away, directories thousands of levels deep (each is moved up to `path`, under a
    name nothing there has, before it is emptied, so paths stay short and one descriptor
    at a time is open), names chosen to collide with those. Directories in `keep` (those
    leading to a library bound under /tmp) are emptied in place, not moved; mount points
    stay, and so does anything that cannot go. Called when no process of the test is left,
    so nothing appears meanwhile: passes are made until one changes nothing."""
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        device = os.fstat(top).st_dev
        moved = 0
        changed = True
        while changed:
            changed = False
            for entry in list(os.scandir(top)):
                try:
                    if not entry.is_dir(follow_symlinks=False):
                        os.unlink(entry.name, dir_fd=top)
                        changed = True
                        continue
                    if f"{path}/{entry.name}" in keep:
                        _empty(f"{path}/{entry.name}", keep)
                        continue
                    if entry.stat(follow_symlinks=False).st_dev != device:
                        continue  # a mount point: a library bound here
                    os.chmod(entry.name, 0o700, dir_fd=top)
                    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                    inner = os.open(entry.name, flags, dir_fd=top)
                    try:
                        for child in list(os.scandir(inner)):
                            if child.is_dir(follow_symlinks=False):
                                moved = _free_name(top, moved)
                                os.rename(
                                    child.name,
                                    f".emptied-{moved}",
                                    src_dir_fd=inner,
                                    dst_dir_fd=top,
                                )
                            else:
                                os.unlink(child.name, dir_fd=inner)
                            changed = True
                    finally:
                        os.close(inner)
                    os.rmdir(entry.name, dir_fd=top)
                except OSError:
                    pass
    finally:
        os.close(top)


def _free_name(top, moved):
    """The next number after `moved` for which `.emptied-N` names nothing in `top`."""
    while True:
        moved += 1
        try:
            os.stat(f".emptied-{moved}", dir_fd=top, follow_symlinks=False)
        except FileNotFoundError:
            return moved


def _rmdir(path):
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty: a mount point below it, or what a test made unremovable


def _supervise(pid, out_r, err_r, deadline, request):
    """Collect a test's output until it exits, runs out of time, or prints too much."""
    caps = {out_r: request["max_stdout"], err_r: request["max_stderr"]}
    chunks = {out_r: [], err_r: []}
    sizes = {out_r: 0, err_r: 0}
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    poller = select.poll()
    for fd in (out_r, err_r, pidfd):
        if fd is not None:
            poller.register(fd, select.POLLIN)
    stopped_for = None
    reaped = None
    try:
        while reaped is None and stopped_for is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stopped_for = "timeout"
                break
            # Without pidfds (not Linux) we look for the exit between short polls.
            exited = False
            for fd, _ in poller.poll(
                1000 * (remaining if pidfd is not None else min(remaining, 0.01))
            ):
                if fd == pidfd:
                    exited = True
                    continue
                data = os.read(fd, READ_CHUNK)
                if not data:
                    poller.unregister(fd)
                    continue
                chunks[fd].append(data)
                sizes[fd] += len(data)
                if sizes[fd] > caps[fd]:
                    stopped_for = "output"
            if exited or pidfd is None:
                waited = os.wait4(pid, os.WNOHANG)
                reaped = waited if waited[0] == pid else None
    finally:
        if pidfd is not None:
            os.close(pidfd)
    if reaped is None:
        os.kill(pid, signal.SIGKILL)
        reaped = os.wait4(pid, 0)
    _, status, usage = reaped
    for fd in (out_r, err_r):
        _drain(fd, chunks[fd], caps[fd] + 1 - sizes[fd])
    return {
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "stdout": b"".join(chunks[out_r]),
        "stderr": b"".join(chunks[err_r]),
        "stopped_for": stopped_for,
    }


def _drain(fd, chunks, budget):
    """Read what is left in a pipe, without waiting for processes that still hold it."""
    os.set_blocking(fd, False)
    while budget > 0:
        try:
            data = os.read(fd, min(READ_CHUNK, budget))
        except BlockingIOError:
            return
        if not data:
            return
        chunks.append(data)
        budget -= len(data)


def _set_limits(request, nproc):
    cpu = request["cpu_s"]
    memory = request["memory_bytes"]
    # The stack a `python3` gets (the inherited soft limit, 8 MB if none), up to the memory
    # limit: a stack as large as the address space lets C recursion run until the timeout
    # where python3 crashes, and leaves exec-ed programs no room for threads' stacks.
    stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
    if stack == resource.RLIM_INFINITY:
        stack = DEFAULT_STACK_BYTES
    limits = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),
        resource.RLIMIT_AS: memory,
        resource.RLIMIT_STACK: (min(stack, memory), memory),
        resource.RLIMIT_FSIZE: request["file_bytes"],
        resource.RLIMIT_CORE: 0,
    }
    if nproc is not None:
        limits[resource.RLIMIT_NPROC] = nproc
    for which, value in limits.items():
        soft, hard = value if isinstance(value, tuple) else (value, value)
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (soft, hard))


def _run_program(codes, stdio):
    """Execute the program (then a test script) as `__main__`, like `python solution.py`."""
    module = types.ModuleType("__main__")
    module.__file__ = PROGRAM_FILE
    module.__builtins__ = builtins
    # What this interpreter gives a script besides: the server is one, run as __main__.
    module.__cached__ = None
    module.__loader__ = type(__loader__)("__main__", PROGRAM_FILE)
    if "__annotations__" in globals():
        module.__annotations__ = {}
    sys.modules["__main__"] = module
    sys.argv = [PROGRAM_FILE]
    sys.path.insert(0, os.getcwd())  # the program's directory, as for `python3 solution.py`
    atexit._clear()
    try:
        for code in codes:
            exec(code, module.__dict__)
        threading = sys.modules.get("threading")
        if threading is not None:
            for thread in threading.enumerate():
                if thread is not threading.main_thread() and not thread.daemon:
                    thread.join()
        _report(COMPLETED)
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException as exc:
        _print_traceback(exc)
        status = 1
        if isinstance(exc, MemoryError) or getattr(exc, "errno", None) == errno.ENOMEM:
            _report(OUT_OF_MEMORY)
    atexit._run_exitfuncs()
    # What the program set as sys.stdout and sys.stderr (None, or objects of its own),
    # then the real streams, which nothing flushes at os._exit.
    for stream in (sys.stdout, sys.stderr, *stdio[1:]):
        try:
            stream.flush()
        except Exception:
            pass
    return status


def _report(what):
    try:
        os.write(REPORT_FD, what)
    except OSError:
        pass  # the program closed it: judged as if it had not happened


class _Quitter:
    """`exit` and `quit`, as `site` makes them (the server runs without `site`)."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"Use {self.name}() or Ctrl-D (i.e. EOF) to exit"

    def __call__(self, code=None):
        try:
            sys.stdin.close()
        except Exception:
            pass
        raise SystemExit(code)


class _Helper:
    """`help`, as `site` makes it: pydoc's, imported when called."""

    def __repr__(self):
        return "Type help() for interactive help, or help(object) for help about object."

    def __call__(self, *args, **kwds):
        import pydoc

        return pydoc.help(*args, **kwds)


def _exit_status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        # As CPython: a status beyond a C long is -1, i.e. 255.
        return code & 0xFF if -(2**63) <= code < 2**63 else 0xFF
    print(code, file=sys.stderr)
    return 1


def _print_traceback(exc):
    """Print the traceback from the program's first frame on: no sandbox frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename not in (PROGRAM_FILE, TEST_FILE):
        tb = tb.tb_next
    exc.__traceback__ = tb
    hook = sys.excepthook  # the program may have set its own, which python3 would call
    try:
        if hook is not sys.__excepthook__:
            try:
                hook(type(exc), exc, tb)
                return
            except Exception:
                pass
        sys.__excepthook__(type(exc), exc, tb)  # the interpreter's own, in C: no imports
    except MemoryError:
        sys.stderr.write(f"{type(exc).__name__}\n")


# --- main ----------------------------------------------------------------------------


def main():
    config = marshal.loads(bytes.fromhex(sys.argv[1]))
    control_in, control_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as PID 1, a default disposition is immune
    cgroup, no_cgroup = _open_memory_cgroup(config)
    try:
        report = _isolate(config, (control_in, control_out))
    except (IsolationError, OSError) as exc:
        send(control_out, {"error": f"cannot isolate tests: {exc}"})
        sys.exit(1)
    cgroup = _check_memory_cgroup(cgroup, no_cgroup, report)
    sys.path.extend(config["library_paths"])
    builtins.exit, builtins.quit = _Quitter("exit"), _Quitter("quit")
    builtins.help = _Helper()
    zygote = Zygote(config, report, report.pop("keep_in_scratch", set()), cgroup)
    send(control_out, {"ready": True, "isolation": report})
    while True:
        request = receive(control_in)
        if request is None:
            return
        try:
            outcome = zygote.run(request)
        except Exception as exc:  # noqa: BLE001 - whatever broke us, one line, no traceback
            # For the caller's log; it restarts us and runs the test again. Plain bytes: a
            # test may have left us short of memory or descriptors (a plain user's tests
            # share our uid and can lower our limits).
            what = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
            os.write(2, f"sandbox: fork server failed: {what}\n".encode(errors="replace"))
            _exit(1)
        send(control_out, outcome)


if __name__ == "__main__":
    main()
