"""The torch.distributed weight transport: bucket layout by hand, and a real gloo broadcast."""

import threading

import torch

from engines import weight_broadcast
from engines.weight_broadcast import Slot, plan_buckets


def test_buckets_split_on_size_and_dtype():
    layout = [
        ("a", (2, 3), "float32"),  # 24 bytes
        ("b", (4,), "float32"),  # 16 bytes: 40 > 32, a new bucket
        ("c", (2,), "float32"),  # 8 bytes: fits with b
        ("d", (2,), "bfloat16"),  # another dtype: a new bucket
        ("e", (100,), "float32"),  # larger than a bucket: alone
    ]
    buckets = plan_buckets(layout, bucket_bytes=32)
    assert [(b.dtype, b.numel) for b in buckets] == [
        ("float32", 6),
        ("float32", 6),
        ("bfloat16", 2),
        ("float32", 100),
    ]
    assert buckets[1].slots == (Slot("b", (4,), 0), Slot("c", (2,), 4))


def test_every_receiver_gets_every_tensor_over_gloo():
    state = {
        "w": torch.randn(3, 5),
        "b": torch.arange(7, dtype=torch.float32),
        "h": torch.randn(4, dtype=torch.float64),
    }
    buckets = plan_buckets(weight_broadcast.layout_of(state), bucket_bytes=64)
    listener = weight_broadcast.listen("127.0.0.1")
    port = listener.getsockname()[1]
    store = weight_broadcast.rendezvous_store("127.0.0.1", port, 3, listener)
    received: dict[int, dict] = {}

    def member(rank: int) -> None:
        group = weight_broadcast.open_group(
            "127.0.0.1", port, rank, 3, "cpu", store if rank == 0 else None
        )
        if rank == 0:
            weight_broadcast.send(group, state, buckets, "cpu")
        else:
            received[rank] = {
                name: t.clone() for name, t in weight_broadcast.receive(group, buckets, "cpu")
            }

    threads = [threading.Thread(target=member, args=(rank,)) for rank in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(received) == [1, 2]
    for tensors in received.values():
        assert list(tensors) == list(state)
        for name, tensor in state.items():
            assert torch.equal(tensors[name], tensor) and tensors[name].dtype == tensor.dtype


def test_the_rendezvous_listens_on_its_host_only():
    listener = weight_broadcast.listen("127.0.0.1")
    host, port = listener.getsockname()[:2]
    store = weight_broadcast.rendezvous_store(host, port, 2, listener)
    client = weight_broadcast.rendezvous_store(host, port, 2)
    client.set("seen", "yes")
    assert store.get("seen") == b"yes"
    # Listening sockets of the machine (/proc/net/tcp: address:port in hex, state 0A).
    rows = [line.split() for line in open("/proc/net/tcp").read().splitlines()[1:]]
    listening = {row[1] for row in rows if row[3] == "0A"}
    assert f"0100007F:{port:04X}" in listening  # 127.0.0.1, not 0.0.0.0 as torch's own
