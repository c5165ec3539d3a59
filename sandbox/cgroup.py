"""The memory cgroup of one fork server's tests: where it can go, made race-free, removed.

With one, a test's memory limit holds for its whole process tree, what it keeps in its
in-memory /tmp and /dev/shm and its SysV segments included; without one only the
address-space limit holds, per process. It goes in cgroup v1's memory hierarchy, as a
child of the caller's own cgroup, or in cgroup v2 beside or below the caller's cgroup,
wherever the memory controller is already handed down (v2 puts no process in a cgroup
whose children have controllers, so enabling it for the caller's own is not ours to do).

Every fork server gets a cgroup of its own, made with one `mkdir` of a name no other can
take (the caller's PID namespace and pid, and random bytes) and removed by whoever made
it, after killing what is left in it: servers starting or stopping at once never touch
each other's. The
fork server stays outside it (its own memory is not a test's); each test process joins
it as it starts. A caller that is killed leaves its cgroups behind, empty: the next
caller to make one in the same place removes those whose maker is gone.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import signal
import time
from dataclasses import dataclass

logger = logging.getLogger("sandbox")

NAME_PREFIX = "rlef-sandbox-"
REMOVE_TIMEOUT_S = 5.0
"""How long removal waits for the killed processes of a cgroup to leave it."""
FILES = {
    1: {
        "procs": "cgroup.procs",
        "limit": "memory.limit_in_bytes",
        "swap_limit": "memory.memsw.limit_in_bytes",
        "events": "memory.oom_control",
    },
    2: {
        "procs": "cgroup.procs",
        "limit": "memory.max",
        "swap_limit": "memory.swap.max",
        "events": "memory.events",
    },
}
"""The files the fork server uses, by role and cgroup version. v1's swap limit bounds
memory and swap together; v2's bounds swap alone. Both event files count `oom_kill`s."""


@dataclass(frozen=True)
class MemoryCgroup:
    path: str
    """The cgroup's directory."""
    version: int
    """1 (the memory hierarchy of cgroup v1) or 2 (the unified hierarchy)."""

    def files(self) -> dict:
        """What the fork server is told: the version and its files' paths, by role (a swap
        limit file only where the kernel has swap accounting)."""
        paths = {role: f"{self.path}/{name}" for role, name in FILES[self.version].items()}
        if not os.path.exists(paths["swap_limit"]):
            del paths["swap_limit"]
        return {"version": self.version, **paths}


def hierarchies(proc_cgroup: str, mountinfo: str) -> list[tuple[int, str]]:
    """The directories of this process's cgroups that can hold a memory cgroup: (1, dir)
    for a v1 memory hierarchy, (2, dir) for the unified one, in that order, from the
    texts of /proc/self/cgroup and /proc/self/mountinfo. A cgroup outside what is mounted
    here (a container that sees only its own part of the tree) is left out."""
    memberships = {}
    for line in proc_cgroup.splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            memberships[2] = path
        elif "memory" in controllers.split(","):
            memberships[1] = path
    found = []
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        fields, rest = fields.split(), rest.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        root, mount_point, fstype = _unescape(fields[3]), _unescape(fields[4]), rest[0]
        if fstype == "cgroup" and "memory" in rest[2].split(","):
            version = 1
        elif fstype == "cgroup2":
            version = 2
        else:
            continue
        path = memberships.pop(version, None)
        if path is None:
            continue
        relative = os.path.relpath(path, root)
        if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
            found.append((version, os.path.normpath(os.path.join(mount_point, relative))))
    return sorted(found)


def _unescape(field: str) -> str:
    """A mountinfo path as it is: the kernel writes space, tab, newline and backslash as
    octal escapes (`\\040`)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _delegates_memory(directory: str) -> bool:
    """Whether children of this v2 cgroup get the memory controller."""
    try:
        with open(f"{directory}/cgroup.subtree_control") as enabled:
            return "memory" in enabled.read().split()
    except OSError:
        return False


def _parents() -> list[tuple[int, str]]:
    """Where a memory cgroup may be made, best first."""
    try:
        with open("/proc/self/cgroup") as a, open("/proc/self/mountinfo") as b:
            found = hierarchies(a.read(), b.read())
    except OSError:
        return []
    parents = []
    for version, directory in found:
        if version == 1:
            parents.append((1, directory))
            continue
        for candidate in (directory, os.path.dirname(directory)):
            if _delegates_memory(candidate):
                parents.append((2, candidate))
    return parents


def make() -> tuple[MemoryCgroup | None, str]:
    """A fresh memory cgroup of this process's, or None and why there is none."""
    parents = _parents()
    if not parents:
        return None, "this process is in no cgroup hierarchy with the memory controller"
    reasons = []
    namespace = _pid_namespace()
    for version, parent in parents:
        _remove_abandoned(parent, namespace)
        while True:
            path = f"{parent}/{NAME_PREFIX}{namespace}-{os.getpid()}-{secrets.token_hex(6)}"
            try:
                os.mkdir(path, 0o755)
                return MemoryCgroup(path, version), ""
            except FileExistsError:
                continue
            except OSError as exc:
                reasons.append(f"cannot make a cgroup in {parent}: {exc.strerror}")
                break
    return None, "; ".join(reasons)


def _pid_namespace() -> int:
    """This process's PID namespace, as the kernel numbers it (a pid means something only
    in its own)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _remove_abandoned(parent: str, namespace: int) -> None:
    """Remove the empty cgroups that callers killed before they could left in `parent`:
    those whose maker (the pid in their name, of PID namespace `namespace`, ours) is not
    alive. One whose maker lives, or is of another PID namespace, or with a process in
    it, is never touched (a pid reused since makes one stay)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        makers_namespace, _, rest = name.removeprefix(NAME_PREFIX).partition("-")
        maker = rest.split("-")[0]
        if (
            not name.startswith(NAME_PREFIX)
            or makers_namespace != str(namespace)
            or not maker.isdigit()
        ):
            continue
        if os.path.exists(f"/proc/{maker}"):
            continue
        try:
            os.rmdir(f"{parent}/{name}")  # fails on a cgroup with a process in it
        except OSError:
            pass


def _kill_members(cgroup: MemoryCgroup) -> None:
    """SIGKILL every process in the cgroup: at once where the kernel can (v2's cgroup.kill),
    else one by one."""
    try:
        with open(f"{cgroup.path}/cgroup.kill", "w") as kill:
            kill.write("1")
        return
    except OSError:
        pass
    try:
        with open(f"{cgroup.path}/cgroup.procs") as members:
            pids = [int(pid) for pid in members.read().split()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def remove(cgroup: MemoryCgroup) -> None:
    """Kill what is left in the cgroup, then remove it (waiting for its processes to go)."""
    deadline = time.monotonic() + REMOVE_TIMEOUT_S
    while True:
        _kill_members(cgroup)
        try:
            os.rmdir(cgroup.path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                logger.warning("sandbox: cannot remove cgroup %s: %s", cgroup.path, exc.strerror)
                return
        time.sleep(0.01)
