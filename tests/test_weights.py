"""Weights for the object store: exact round trip, and a view sends only its own bytes."""

import pickle

import torch

from engines.weights import deserialize_weights, serialize_weights


def test_round_trip_keeps_values_dtypes_and_shapes():
    state = {
        "w": torch.randn(3, 4),
        "h": torch.randn(5, dtype=torch.bfloat16),
        "i": torch.arange(6, dtype=torch.int64).view(2, 3),
    }
    back = deserialize_weights(pickle.loads(pickle.dumps(serialize_weights(state), protocol=5)))
    assert list(back) == list(state)
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor)


def test_a_view_into_a_flat_buffer_pickles_only_its_own_bytes():
    # Under ZeRO-1/2 the state dict's tensors are views into one flat buffer.
    flat = torch.randn(1_000_000)
    state = {"a": flat[:100].view(10, 10), "b": flat[100:200]}
    size = len(pickle.dumps(serialize_weights(state), protocol=5))
    assert size < 10_000  # 200 floats and names, not the 4 MB buffer
