"""Bytes the Ray object store moved between nodes, from each node's own counter.

Every raylet counts the bytes its object manager received from other nodes: the counter
`ray_object_manager_bytes{Type="Received"}` on the node's Prometheus endpoint (its
`MetricsExportPort`). Their sum is what crossed between nodes through the object store:
weights copied to engines, rollouts fetched by learner ranks, programs to sandbox actors.
The `distributed` weight transport's broadcast (gloo, NCCL) goes around the store and is
not in it. Ray publishes the counters every `metrics_report_interval_ms` (10 s unless
set), so a reading lags the transfers by up to that.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

RECEIVED = re.compile(r'^ray_object_manager_bytes\{[^}]*Type="Received"[^}]*\}\s+(\S+)', re.M)
SCRAPE_TIMEOUT_S = 2.0
"""A node's endpoint that does not answer within this is left out of the reading."""


def received_bytes(metrics_text: str) -> float:
    """The node's received-bytes counter in its Prometheus text (0 if it has none yet)."""
    return sum(float(value) for value in RECEIVED.findall(metrics_text))


def _scrape(address: str) -> float | None:
    try:
        with urllib.request.urlopen(address, timeout=SCRAPE_TIMEOUT_S) as response:
            return received_bytes(response.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return None


class CrossNodeBytes:
    """Bytes received across nodes between two readings, per node's counter."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        """Per node id, its counter at the last reading."""
        self._started = False

    def moved(self) -> float | None:
        """Bytes the live nodes received since the last call (the first call only takes
        the counters as they are); None when no node's endpoint answered (metrics off).
        A node that joined since counts from its start; a lost one's last bytes are
        missed."""
        import ray

        nodes = {
            node[
                "NodeID"
            ]: f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
            for node in ray.nodes()
            if node["Alive"] and node.get("MetricsExportPort")
        }
        if not nodes:
            return None
        with ThreadPoolExecutor(max_workers=min(16, len(nodes))) as scrapers:
            counters = dict(zip(nodes, scrapers.map(_scrape, nodes.values()), strict=True))
        answered = {node: value for node, value in counters.items() if value is not None}
        if not answered:
            return None
        moved = sum(max(0.0, value - self._last.get(node, 0.0)) for node, value in answered.items())
        self._last.update(answered)
        first, self._started = not self._started, True
        return None if first else moved
