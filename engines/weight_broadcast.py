"""Weights over torch.distributed: learner rank 0 broadcasts, every engine worker receives.

The group is made apart from the learner's own (a TCP store and a process group object,
nothing registered globally), so engines never join the learner's world: rank 0 is
learner rank 0, ranks 1.. are the engines' workers. gloo on CPU, NCCL on GPUs: the same
calls. Tensors travel in buckets of one dtype, one broadcast per bucket, never one call
per parameter; both sides know the bucket layout (`plan_buckets`) before the first byte.

A group never takes a member back: an engine that restarted has lost its place, so every
member leaves the group (`close_group`) and joins a new one, on a fresh port, before the
next broadcast. Every wait (rendezvous, broadcast) ends after `GROUP_TIMEOUT_S`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

GROUP_TIMEOUT_S = 600


@dataclass(frozen=True)
class Slot:
    """One tensor's place in a bucket."""

    name: str
    shape: tuple[int, ...]
    offset: int
    """First element in the bucket's flat buffer."""

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


@dataclass(frozen=True)
class Bucket:
    """Tensors of one dtype sent as one flat buffer."""

    dtype: str
    """A torch dtype's name, e.g. `float32`."""
    numel: int
    slots: tuple[Slot, ...]


def plan_buckets(
    tensors: list[tuple[str, tuple[int, ...], str]], bucket_bytes: int
) -> list[Bucket]:
    """Buckets for (name, shape, dtype name) in order: a new bucket when the dtype changes
    or the current one would pass `bucket_bytes` (a larger tensor travels alone)."""
    import torch

    buckets: list[Bucket] = []
    slots: list[Slot] = []
    numel, dtype = 0, None

    def close() -> None:
        if slots:
            buckets.append(Bucket(dtype, numel, tuple(slots)))

    for name, shape, tensor_dtype in tensors:
        itemsize = getattr(torch, tensor_dtype).itemsize
        slot = Slot(name, tuple(shape), numel)
        if slots and (tensor_dtype != dtype or (numel + slot.numel) * itemsize > bucket_bytes):
            close()
            slots, numel = [], 0
            slot = Slot(name, tuple(shape), 0)
        dtype = tensor_dtype
        slots.append(slot)
        numel += slot.numel
    close()
    return buckets


def layout_of(state_dict: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype name) of every tensor of `state_dict`, in order."""
    return [
        (name, tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."))
        for name, tensor in state_dict.items()
    ]


def listen(host: str) -> socket.socket:
    """A socket listening at a free port of `host` only (torch's own stores listen on
    every interface): a rendezvous store serves from it."""
    return socket.create_server((host, 0))


def rendezvous_store(host: str, port: int, world_size: int, listener=None):
    """The group's TCP store at `host:port`: served from `listener` (`listen`) by the
    member that made it, joined as a client by the others. Gloo's own sockets go on the
    loopback interface when the group lives on one host (`host` is a loopback address)."""
    import torch.distributed as dist

    if ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        loopback = next(name for _, name in socket.if_nameindex() if name.startswith("lo"))
        os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback)
    return dist.TCPStore(
        host,
        port,
        world_size,
        listener is not None,
        timedelta(seconds=GROUP_TIMEOUT_S),
        wait_for_workers=False,
        master_listen_fd=listener.detach() if listener is not None else None,
    )


def open_group(host: str, port: int, rank: int, world_size: int, device: str, store=None):
    """This process's member of the weight group, whose store is at `host:port` (`store`:
    the one rank 0 serves, on rank 0). gloo when `device` is `cpu`, NCCL otherwise."""
    import torch.distributed as dist

    timeout = timedelta(seconds=GROUP_TIMEOUT_S)
    if store is None:
        store = rendezvous_store(host, port, world_size)
    store = dist.PrefixStore("rlef-weights", store)
    if device == "cpu":
        return dist.ProcessGroupGloo(store, rank, world_size, timeout)
    return dist.ProcessGroupNCCL(store, rank, world_size)


def close_group(group) -> None:
    """Leave `group` (None: no group), e.g. before joining its successor; by aborting
    its communicators, which waits for no one (a member it lost is gone for good)."""
    if group is not None:
        group.abort()


def send(group, state_dict: dict, buckets: list[Bucket], device: str) -> None:
    """Broadcast `state_dict` (on rank 0) bucket by bucket, building the next bucket while
    the previous one travels."""
    import torch

    in_flight = []
    for bucket in buckets:
        flat = torch.cat(
            [state_dict[slot.name].detach().reshape(-1).to(device) for slot in bucket.slots]
        )
        in_flight.append((flat, group.broadcast(flat, 0)))
        if len(in_flight) > 1:
            in_flight.pop(0)[1].wait()
    for _, work in in_flight:
        work.wait()


def receive(group, buckets: list[Bucket], device: str) -> Iterator[tuple[str, object]]:
    """(name, tensor) of every tensor rank 0 sends, in order."""
    import torch

    posted = []
    for bucket in buckets:
        flat = torch.empty(bucket.numel, dtype=getattr(torch, bucket.dtype), device=device)
        posted.append((bucket, flat, group.broadcast(flat, 0)))
    for bucket, flat, work in posted:
        work.wait()
        for slot in bucket.slots:
            yield slot.name, flat[slot.offset : slot.offset + slot.numel].view(slot.shape)
