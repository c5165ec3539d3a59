"""Where a fork server's memory cgroup can go, read from /proc/self/cgroup and mountinfo."""

from sandbox.cgroup import hierarchies

HYBRID_CGROUPS = """\
9:name=systemd:/
4:memory:/process_api/abc
1:cpu:/
0::/
"""
HYBRID_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_cgroup_v1_memory_and_the_unified_hierarchy_are_both_found():
    assert hierarchies(HYBRID_CGROUPS, HYBRID_MOUNTS) == [
        (1, "/sys/fs/cgroup/memory/process_api/abc"),
        (2, "/sys/fs/cgroup/unified"),
    ]


def test_a_cgroup_v2_host():
    mounts = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    cgroups = "0::/system.slice/ray.service\n"
    assert hierarchies(cgroups, mounts) == [(2, "/sys/fs/cgroup/system.slice/ray.service")]


def test_a_container_sees_its_part_of_the_tree_from_the_mount_root():
    """Without a cgroup namespace, a container's mount shows the tree from its own cgroup."""
    mounts = "700 690 0:26 /docker/c0ffee /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n"
    inside = "0::/docker/c0ffee/worker\n"
    assert hierarchies(inside, mounts) == [(2, "/sys/fs/cgroup/worker")]
    outside = "0::/docker/other\n"  # not under what is mounted here: no place for one
    assert hierarchies(outside, mounts) == []


def test_a_v1_hierarchy_without_memory_and_a_missing_mount_give_nothing():
    cgroups = "3:cpu,cpuacct:/\n4:memory:/job\n"
    mounts = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    assert hierarchies(cgroups, mounts) == []


def test_paths_with_spaces_are_read_as_they_are():
    """mountinfo writes a space in a path as \\040."""
    mounts = "29 23 0:26 / /srv/cgroup\\040root rw - cgroup2 cgroup2 rw\n"
    assert hierarchies("0::/job a\n", mounts) == [(2, "/srv/cgroup root/job a")]
