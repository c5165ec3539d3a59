"""Where the run's actors went: the node of each, and a line that says it by role.

A run with node roles (`cluster.*_resource`) puts learner ranks, engines and sandbox
actors on the nodes that declare their role's resource; `placement.json` in the run
folder records what Ray did as the run started (with each actor's process id, for drills on
one machine), and the line says it in short.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from launch.train_config import RAY_RESOURCES

PLACEMENT_FILE = "placement.json"


def actor_nodes(names: list[str]) -> dict[str, dict]:
    """Per named actor of this job: its node's id, address and custom resources (those
    a node declares at `ray start --resources`, Ray's own left out), and its process id
    there."""
    import ray

    nodes = {node["NodeID"]: node for node in ray.nodes()}
    handles = [ray.get_actor(name) for name in names]
    where = ray.get([h.__ray_call__.remote(_where) for h in handles])
    placed = {}
    for name, (node_id, pid) in zip(names, where, strict=True):
        node = nodes[node_id]
        placed[name] = {
            "node_id": node_id,
            "node_ip": node["NodeManagerAddress"],
            "pid": pid,
            "resources": sorted(
                resource
                for resource in node["Resources"]
                if resource not in RAY_RESOURCES and not resource.startswith("node:")
            ),
        }
    return placed


def _where(_actor) -> tuple[str, int]:
    """Run in an actor: its node's id and its process id."""
    import os

    import ray

    return ray.get_runtime_context().get_node_id(), os.getpid()


def role_of(name: str) -> str:
    """`learner-1` -> `learner`."""
    return name.rsplit("-", 1)[0]


def placement_line(placed: dict[str, dict]) -> str:
    """`placed` in one line: per role, how many actors on how many nodes."""
    by_role: dict[str, list[str]] = defaultdict(list)
    for name, where in placed.items():
        by_role[role_of(name)].append(where["node_id"])
    parts = [
        f"{role} x{len(nodes)} on {_nodes(len(set(nodes)))}" for role, nodes in by_role.items()
    ]
    in_all = len({where["node_id"] for where in placed.values()})
    return f"train: placed {', '.join(parts)}; {_nodes(in_all)} in all"


def _nodes(count: int) -> str:
    return f"{count} node{'s' * (count != 1)}"


def write_placement(directory: str | Path, placed: dict[str, dict]) -> None:
    """`placed` into the run folder's `placement.json`."""
    (Path(directory) / PLACEMENT_FILE).write_text(json.dumps(placed, indent=1) + "\n")
