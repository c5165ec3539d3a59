"""Shared fixtures, and the rule that GPU tests are skipped, with the reason, without a GPU."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from sandbox import Job, Sandbox, SandboxConfig, TestSet


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


QUICK_TINY = dict(
    hidden_size=64,
    heads=1,
    intermediate_size=128,
    layers=2,
    train_problems=150,
    steps=8,
    batch_size=4,
    eval_problems=12,
    max_new_tokens=48,
)
"""A tiny model that builds in seconds: loadable and real, though it has learned little."""


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
    from fixtures import random_qwen2

    return random_qwen2(tmp_path_factory.mktemp("random-qwen2"))


@pytest.fixture(scope="session")
def sandbox():
    """One sandbox (two fork servers, default isolation) for the whole session."""
    with Sandbox(SandboxConfig(workers=2)) as box:
        yield box


def stdio_job(program: str, inputs, outputs=None, **limits) -> Job:
    """A stdin/stdout job; `program` is dedented; outputs default to empty strings."""
    inputs = tuple(inputs)
    outputs = tuple(outputs) if outputs is not None else ("",) * len(inputs)
    limits.setdefault("time_limit_s", 2.0)
    limits.setdefault("memory_mb", 512)
    return Job(textwrap.dedent(program), TestSet("stdio", inputs, outputs), **limits)


def run_one(sandbox: Sandbox, program: str, stdin: str = "", expected: str = "", **limits):
    """The TestResult of `program` on one stdin/stdout test."""
    return sandbox.run(stdio_job(program, [stdin], [expected], **limits)).tests[0]


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
