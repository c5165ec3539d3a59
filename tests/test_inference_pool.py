"""Inference actors on Ray: a killed actor's dialogs are played again, none lost."""

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM

from actors.dialog import DialogConfig
from actors.seeds import EpisodeSeeds
from engines.generation import EngineConfig, ModelConfig, SamplingConfig
from engines.weights import serialize_weights
from problems.toy import generate_toy
from sandbox import SandboxConfig

ray = pytest.importorskip("ray")
from actors.inference import InferencePool  # noqa: E402


def test_an_actor_killed_mid_phase_loses_no_dialog(local_ray, quick_tiny_model):
    # Replies pre-filled with the reference program: every episode is solved at turn 1,
    # whichever actor plays it, so a lost or doubled dialog would show.
    problems = [
        dataclasses.replace(p, reply_prefix=f"```python\n{p.solutions[0]}```\n")
        for p in generate_toy("valid", 12)
    ]
    dialog = DialogConfig(sampling=SamplingConfig(max_new_tokens=8))
    pool = InferencePool(
        ModelConfig(path=str(quick_tiny_model)),
        EngineConfig(backend="hf"),
        dialog,
        SandboxConfig(),
        num_actors=2,
        chunk_size=2,
        actor_options=lambda index: {"num_cpus": 1, "name": f"inference-test-{index}"},
    )
    try:
        model = AutoModelForCausalLM.from_pretrained(quick_tiny_model, dtype=torch.float32)
        pool.update_weights(serialize_weights(model.state_dict()), version=5)  # actors built
        killed = []

        def kill_actor_zero_once(_rollouts):
            if not killed:
                killed.append(True)
                ray.kill(pool.actors[0], no_restart=False)

        rollouts = pool.play(problems, EpisodeSeeds(1, "train", 1), on_done=kill_actor_zero_once)
        assert [r.problem for r in rollouts] == [p.name for p in problems]
        assert all(r.passed and len(r.turns) == 1 for r in rollouts)
        assert pool.stats.actor_failures >= 1
        assert {r.weight_version for r in rollouts} == {5}
        # A second phase, with the restarted actor back in play: it caught up first.
        again = pool.play(problems, EpisodeSeeds(1, "train", 2))
        assert all(r.passed for r in again)
        assert {r.weight_version for r in again} == {5}
    finally:
        pool.shutdown()


def test_a_worker_behind_the_weights_it_is_sent_catches_up_before_playing(
    local_ray, quick_tiny_model
):
    from actors.inference import RolloutWorker

    worker = RolloutWorker(
        ModelConfig(path=str(quick_tiny_model)),
        EngineConfig(backend="hf"),
        DialogConfig(sampling=SamplingConfig(max_new_tokens=4)),
        SandboxConfig(),
    )
    model = AutoModelForCausalLM.from_pretrained(quick_tiny_model, dtype=torch.float32)
    reference = ray.put(serialize_weights(model.state_dict()))
    rollouts = worker.play(
        generate_toy("valid", 2), EpisodeSeeds(0, "train", 1), weights=([reference], 7)
    )
    assert worker.weight_version() == 7
    assert {r.weight_version for r in rollouts} == {7}
    worker.sandbox.close()


def test_episodes_judged_by_the_ray_sandbox_pool(local_ray, quick_tiny_model):
    from transformers import AutoTokenizer

    from actors.dialog import play_episodes
    from actors.sandbox_pool import SandboxPool
    from engines.backend import make_engine

    tokenizer = AutoTokenizer.from_pretrained(quick_tiny_model)
    engine = make_engine(EngineConfig(backend="hf"), ModelConfig(path=str(quick_tiny_model)))
    toy = generate_toy("valid", 6)
    problems = [
        dataclasses.replace(p, reply_prefix=f"```python\n{program}```\n")
        for p, program in zip(
            toy,
            [p.solutions[0] if i % 2 else p.incorrect_solutions[0] for i, p in enumerate(toy)],
            strict=True,
        )
    ]
    pool = SandboxPool.start(SandboxConfig(), num_actors=1, num_cpus_per_actor=0.5)
    try:
        rollouts = play_episodes(
            problems,
            engine,
            pool.run,
            tokenizer,
            DialogConfig(sampling=SamplingConfig(max_new_tokens=8)),
            EpisodeSeeds(0, "train", 1),
        )
    finally:
        pool.shutdown()
    assert [r.passed for r in rollouts] == [False, True, False, True, False, True]
    assert all(len(r.turns) == 1 for r in rollouts[1::2])


def test_two_vllm_actors_on_one_host_get_their_own_cores(local_ray, quick_tiny_model):
    pytest.importorskip("vllm")
    from actors.inference import own_cores

    binds = {own_cores(EngineConfig(), i, 2).cpu_threads_bind for i in range(2)}
    assert len(binds) == 2 and "auto" not in binds
    assert own_cores(EngineConfig(backend="hf"), 1, 2).cpu_threads_bind == "auto"
    problems = generate_toy("valid", 8)
    pool = InferencePool(
        ModelConfig(path=str(quick_tiny_model)),
        EngineConfig(),
        DialogConfig(sampling=SamplingConfig(max_new_tokens=8)),
        SandboxConfig(),
        num_actors=2,
        chunk_size=2,
        actor_options=lambda index: {"num_cpus": 1},
    )
    try:
        rollouts = pool.play(problems, EpisodeSeeds(0, "train", 1))
    finally:
        pool.shutdown()
    assert [r.problem for r in rollouts] == [p.name for p in problems]
    assert pool.stats.actor_failures == 0


def test_the_in_process_pool_plays_what_the_actors_play(local_ray, quick_tiny_model):
    """`launch.evaluate`'s pool (one worker, no Ray) and the training app's (actors):
    the same chunks and seeds give the same dialogs, token for token."""
    problems = generate_toy("valid", 6)
    setup = (
        ModelConfig(path=str(quick_tiny_model)),
        EngineConfig(backend="hf"),
        DialogConfig(sampling=SamplingConfig(max_new_tokens=24)),
        SandboxConfig(),
    )
    ticks = []
    local = InferencePool(*setup, num_actors=1, chunk_size=4, in_process=True)
    actors = InferencePool(*setup, num_actors=1, chunk_size=4)
    try:
        here = local.play(problems, EpisodeSeeds(3, "eval", 0), on_done=ticks.append)
        there = actors.play(problems, EpisodeSeeds(3, "eval", 0))
    finally:
        local.shutdown()
        actors.shutdown()
    assert ticks == [4, 2]  # rollouts per finished chunk
    assert [r.token_ids for r in here] == [r.token_ids for r in there]
    assert [r.passed for r in here] == [r.passed for r in there]
