"""Weights through Ray's object store: a state dict as numpy arrays, and back.

Numpy, because Ray stores numpy arrays without pickling their bytes (one copy into the
store; readers on the node map the stored object), where torch tensors are pickled with
their whole storage. That matters under ZeRO-1/2, where `state_dict()` tensors are views
into one flat buffer: pickling each view would send the whole buffer each time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

_SAME_SIZE_INTEGER = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


@dataclass
class PackedWeights:
    """A state dict as numpy arrays of the tensors' raw bytes."""

    arrays: dict[str, np.ndarray]
    """name -> the tensor's elements, reinterpreted as integers of the same size (numpy
    has no bfloat16)."""
    dtypes: dict[str, str]
    """name -> the tensor's torch dtype name."""

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays.values())


def serialize_weights(state_dict: dict) -> PackedWeights:
    """`state_dict`'s tensors as CPU numpy views (the store copies them once, on put)."""
    import torch

    arrays, dtypes = {}, {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu").contiguous()
        integer = getattr(torch, _SAME_SIZE_INTEGER[tensor.element_size()])
        arrays[name] = tensor.view(integer).numpy()
        dtypes[name] = str(tensor.dtype).removeprefix("torch.")
    return PackedWeights(arrays, dtypes)


def deserialize_weights(payload: PackedWeights) -> dict:
    """name -> tensor, viewing `payload`'s arrays (no copy): load them, do not write."""
    import torch

    weights = {}
    with warnings.catch_warnings():
        # Ray hands out stored arrays read-only; these views are only read from.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for name, array in payload.arrays.items():
            weights[name] = torch.from_numpy(array).view(getattr(torch, payload.dtypes[name]))
    return weights
