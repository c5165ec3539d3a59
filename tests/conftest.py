"""Shared fixtures and the rule that GPU tests are skipped, with the reason, without a GPU.

Helpers that tests import live in `fixtures.py` (and `train_app.py`), imported as
`from fixtures import ...`.
"""

from __future__ import annotations

import shutil

import pytest
from fixtures import QUICK_TINY, random_qwen2

from sandbox import Sandbox, SandboxConfig


def _gpu_missing_reason() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU on this machine (nvidia-smi not found)"
    import torch

    return None if torch.cuda.is_available() else "torch sees no CUDA device"


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    reason = _gpu_missing_reason() if gpu_items else None
    if reason:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def quick_tiny_model(tmp_path_factory):
    """The folder of a quickly built tiny model (tokenizer, chat template, weights)."""
    from launch.prepare_tiny import TinyModelConfig, prepare

    out = tmp_path_factory.mktemp("quick-tiny")
    prepare(TinyModelConfig(out_dir=str(out), **QUICK_TINY))
    return out


@pytest.fixture(scope="session")
def random_qwen2_model(tmp_path_factory):
    """The folder of a random tiny Qwen2 (tied embeddings, GQA) with the tiny tokenizer."""
    return random_qwen2(tmp_path_factory.mktemp("random-qwen2"))


@pytest.fixture(scope="session")
def sandbox():
    """One sandbox (two fork servers, default isolation) for the whole session."""
    with Sandbox(SandboxConfig(workers=2)) as box:
        yield box


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for one test module (one already running is reused and left alone)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()
