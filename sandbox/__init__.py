"""Running untrusted, model-written programs and judging them like CodeContests.

Threat model. The programs are written by a language model being trained: they are not
crafted by an attacker who knows this sandbox, but they are buggy, greedy and sometimes
destructive (infinite loops, memory and fork bombs, output floods, `rm -rf`, network
calls, reading the environment for tokens, killing their parent).

What it protects against, on Linux with namespaces (as root, or where the kernel
allows unprivileged user namespaces); the README's threat model has the details:
- the caller and the fork server: every test runs in a child of a separate fork server,
  never in the Ray worker; the server is PID 1 of the tests' PID namespace (signals from
  them ignored, not dumpable), and the caller is not in that namespace;
- the host: as root, tests run as an unprivileged uid of their server's, without
  capabilities or a way to regain them, in a read-only root view that shows the host's
  system directories and this Python's files only (no /run, /var, /home: no host socket
  file), a /proc of their own with /proc/sys read-only, a /dev of null, zero, full,
  random, urandom; a plain user's tests share its uid, and a server whose limits or
  priority a test changed is replaced;
- runaway resources: CPU time and memory (of the whole process tree, memory by a
  cgroup per server, /tmp and /dev/shm included), wall-clock time, address space per
  process, stack (as python3 gets it), file size, processes and threads (RLIMIT_NPROC
  on the tests' uid, or per server namespace), stdout and stderr size;
- leftovers: /tmp (with the working directory) and /dev/shm are emptied after each
  test, SysV IPC goes with the test's IPC namespace, the kernel keyrings (a uid's, in no
  namespace) and user namespaces of a test's own are refused by a seccomp filter, and
  every process a test started is killed when it ends, daemonized grandchildren and
  processes that ignore SIGTERM included;
- secrets in the environment: the server and the tests get a scrubbed environment;
- the network: tests are in an empty network namespace (not even loopback is up);
- programs that close their file descriptors or kill their parent: the server never
  shares its control pipes with a test.

What it does not protect against:
- kernel exploits and container escapes: tests share the host kernel (use a VM or gVisor
  around the whole job for hostile code);
- reading what the view shows (/etc, the Python installation);
- side channels and CPU contention between tests on the same machine;
- memory summed over a test's process tree where no memory cgroup can be made (a
  plain user without delegation): the isolation report's `memory_cap` says `rlimit`;
- tampering with assertion tests: an assertion script runs in the program's own process
  (as in every HumanEval harness), so a program can patch what the assertions call. A
  test passes only if the script ran to its end (no early exit(0)), and it is never on
  disk, but stdin/stdout tests, whose expected outputs never enter the sandbox, are the
  ones to reward training with.

Where the host's root runs inside a user namespace that maps only root there is no
process cap (the kernel exempts the host's root from RLIMIT_NPROC, in any namespace):
isolation='namespaces' refuses, 'auto' warns. A rootless container keeps it.
Without namespaces (a kernel or container that refuses them, or isolation='none') tests
still run in child processes under the same rlimits, but with network access, a writable
file system, no process cap and no guarantee against daemonized leftovers; the sandbox
then logs a loud warning naming what is missing.

Importing this package is light, and it imports nothing of the project's: Ray comes in
with `actors.sandbox_pool`, the sandbox on Ray.
"""

from .client import Sandbox, SandboxStartError
from .config import ConfigError, SandboxConfig, SandboxConfigError
from .judge import outputs_match
from .records import (
    ASSERTIONS,
    DEFAULT_MEMORY_MB,
    DEFAULT_TIME_LIMIT_S,
    MAX_MEMORY_MB,
    MAX_TIME_LIMIT_S,
    MIN_MEMORY_MB,
    STDIO,
    VERDICTS,
    Job,
    JobError,
    Judgement,
    TestResult,
    TestSet,
)

__all__ = [
    "ASSERTIONS",
    "ConfigError",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_TIME_LIMIT_S",
    "MAX_MEMORY_MB",
    "MAX_TIME_LIMIT_S",
    "MIN_MEMORY_MB",
    "STDIO",
    "VERDICTS",
    "Job",
    "JobError",
    "Judgement",
    "Sandbox",
    "SandboxConfig",
    "SandboxConfigError",
    "SandboxStartError",
    "TestResult",
    "TestSet",
    "outputs_match",
]
