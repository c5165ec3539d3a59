"""The learner group on Ray and DeepSpeed (gloo, two ranks, CPU): ranks agree and match a
single-process run of the same objective; checkpoints resume bit for bit."""

import copy
import time

import pytest
import torch
from fixtures import synthetic_rollouts
from transformers import AutoModelForCausalLM

from engines.generation import ModelConfig
from learner import algo
from learner.batch import collate, token_logprobs
from learner.config import LearnerConfig
from learner.rank import lr_factor, parameter_groups, update_parts
from learner.value_model import ValueModel

ray = pytest.importorskip("ray")
from learner.group import LearnerGroup  # noqa: E402

VOCAB = 1024


def _config(**overrides) -> LearnerConfig:
    settings = dict(
        num_ranks=2,
        updates_per_iteration=2,
        micro_batch_tokens=160,  # several micro-batches per rank and update
        lr=1e-4,
        value_lr=3e-4,
        warmup_steps=2,
        max_grad_norm=1.0,
    )
    return LearnerConfig(**{**settings, **overrides})


def _single_process(config: LearnerConfig, location, rollouts) -> dict:
    """The same iteration in one process, in plain torch: whole parts, no DeepSpeed."""
    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
    reference = copy.deepcopy(policy).requires_grad_(False)
    value = ValueModel.from_pretrained(location, torch.float32)
    steppers = []
    for module, lr in ((policy, config.lr), (value, config.value_lr)):
        optimizer = torch.optim.AdamW(
            parameter_groups(module, config.weight_decay), lr=lr, betas=config.betas
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: lr_factor(
                step, config.warmup_steps, config.lr_decay_steps, config.lr_final_fraction
            ),
        )
        steppers.append((module, optimizer, schedule))
    parts = update_parts(len(rollouts), config.updates_per_iteration, config.seed, 0)
    prepared = []
    with torch.no_grad():
        for part in parts:
            batch = collate([rollouts[i] for i in part], 0, value_level=config.value_level)
            ref = token_logprobs(reference(**batch.model_inputs()).logits, batch)
            values = value.point_values(batch)
            returns, advantages = batch.targets(ref, values)
            prepared.append((batch, values, returns[batch.turn_of_point], advantages))
    seen = []
    for batch, old_values, returns, advantages in prepared:
        logits = policy(**batch.model_inputs()).logits
        policy_loss, _ = algo.ppo_policy_loss(
            token_logprobs(logits, batch),
            batch.behaviour_logprobs,
            advantages[batch.point_of_token],
        )
        value_loss = algo.clipped_value_loss(value.point_values(batch), old_values, returns)
        policy_loss.backward()
        value_loss.backward()
        norms = []
        for module, optimizer, schedule in steppers:
            norms.append(torch.nn.utils.clip_grad_norm_(module.parameters(), config.max_grad_norm))
            optimizer.step()
            optimizer.zero_grad()
            schedule.step()
        seen.append(
            {
                "policy_loss": policy_loss.item(),
                "value_loss": value_loss.item(),
                "grad_norm": norms[0].item(),
            }
        )
    return {"policy": policy.state_dict(), "value": value.state_dict(), "updates": seen}


@pytest.mark.parametrize("stage,level", [(2, "turn"), (3, "turn"), (2, "token")])
def test_ranks_agree_and_match_one_process(local_ray, quick_tiny_model, stage, level):
    config = _config(zero_stage=stage, value_level=level)
    rollouts = synthetic_rollouts(12, seed=stage, vocab_size=VOCAB)
    initial = AutoModelForCausalLM.from_pretrained(quick_tiny_model).state_dict()
    group = LearnerGroup(config, ModelConfig(str(quick_tiny_model)))
    try:
        metrics = group.train(rollouts, iteration=0)
        ranks = group.parameters()
    finally:
        group.shutdown()
    assert len(metrics["updates"]) == 2
    assert metrics["updates"][0]["lr"] == pytest.approx(config.lr / 2)  # warm-up
    expected = _single_process(config, quick_tiny_model, rollouts)
    # Losses and the gradient's norm (before clipping) as one process sees them: the
    # micro-batch and rank weighting adds up to the mean over the whole update.
    for got, want in zip(metrics["updates"], expected["updates"], strict=True):
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-4), key
    for model in ("policy", "value"):
        assert ranks[0][model].keys() == expected[model].keys()
        for name, tensor in expected[model].items():
            assert torch.equal(ranks[0][model][name], ranks[1][model][name]), name
            # AdamW's first steps move each weight by about lr, whatever its gradient's
            # size: a wrong gradient would show at that scale.
            assert torch.allclose(ranks[0][model][name], tensor, rtol=0, atol=2e-6), name
    moved = max(
        (ranks[0]["policy"][name] - tensor).abs().max().item() for name, tensor in initial.items()
    )
    assert moved > config.lr


def test_weight_decay_spares_biases_and_norms(random_qwen2_model):
    model = AutoModelForCausalLM.from_pretrained(random_qwen2_model, dtype=torch.float32)
    decayed, undecayed = parameter_groups(model, weight_decay=0.1)
    assert (decayed["weight_decay"], undecayed["weight_decay"]) == (0.1, 0.0)
    names = {id(p): name for name, p in model.named_parameters()}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    undecayed_names = {names[id(p)] for p in undecayed["params"]}
    assert "model.embed_tokens.weight" in decayed_names  # tied with lm_head: listed once
    assert "model.layers.0.self_attn.q_proj.weight" in decayed_names
    assert "model.layers.0.self_attn.q_proj.bias" in undecayed_names
    assert "model.layers.1.post_attention_layernorm.weight" in undecayed_names
    assert "model.norm.weight" in undecayed_names
    assert all(len(p.shape) == 1 for p in undecayed["params"])
    assert len(decayed["params"]) + len(undecayed["params"]) == len(list(model.parameters()))


def test_bf16_training_accumulates_and_reduces_gradients_in_fp32():
    from learner.rank import deepspeed_config

    gpu = deepspeed_config(_config(device="cuda", dtype="bfloat16"))
    assert gpu["bf16"] == {"enabled": True}
    assert gpu["data_types"] == {"grad_accum_dtype": "fp32"}
    assert gpu["communication_data_type"] == "fp32"
    cpu = deepspeed_config(_config())
    assert cpu["bf16"] == {"enabled": False} and "data_types" not in cpu


def test_learning_rate_warms_up_then_decays_to_its_floor():
    factors = [lr_factor(step, 2, 6, 0.1) for step in range(8)]
    assert factors == pytest.approx([0.5, 1.0, 1.0, 0.775, 0.55, 0.325, 0.1, 0.1])
    assert [lr_factor(step, 2, 0, 0.1) for step in range(4)] == [0.5, 1.0, 1.0, 1.0]
    assert lr_factor(0, 0, 0, 0.1) == 1.0


def test_a_checkpoint_resumes_bit_for_bit(local_ray, quick_tiny_model, tmp_path):
    # The second iteration's updates fall in the decay: the schedule's place is restored.
    config = _config(lr_decay_steps=4)
    model = ModelConfig(str(quick_tiny_model))
    batches = [synthetic_rollouts(8, seed=10 + i, vocab_size=VOCAB) for i in range(2)]
    group = LearnerGroup(config, model)
    try:
        group.train(batches[0], iteration=0)
        saved = group.save_checkpoint(str(tmp_path / "checkpoints"), 0, {"position": 8})
        uninterrupted_metrics = group.train(batches[1], iteration=1)
        uninterrupted = group.parameters()[0]
    finally:
        group.shutdown()
    resumed_group = LearnerGroup(config, model)
    try:
        state = resumed_group.load_checkpoint(saved)
        resumed_metrics = resumed_group.train(batches[1], iteration=1)
        resumed = resumed_group.parameters()[0]
    finally:
        resumed_group.shutdown()
    assert state == {"position": 8, "iteration": 0}
    timing = {"tokens_per_s", "time_s"}
    assert [
        {k: v for k, v in u.items() if k not in timing} for u in resumed_metrics["updates"]
    ] == [{k: v for k, v in u.items() if k not in timing} for u in uninterrupted_metrics["updates"]]
    for part in ("policy", "value"):
        for name, tensor in uninterrupted[part].items():
            assert torch.equal(resumed[part][name], tensor), name


def test_too_few_rollouts_for_the_ranks_is_a_clear_error(local_ray, quick_tiny_model):
    group = LearnerGroup(_config(updates_per_iteration=4), ModelConfig(str(quick_tiny_model)))
    try:
        with pytest.raises(ray.exceptions.RayTaskError, match="fewer sequences per update"):
            group.train(synthetic_rollouts(6, seed=0, vocab_size=VOCAB), iteration=0)
    finally:
        group.shutdown()


def _logprobs(state: dict, location, token_ids: list[int]) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
    model.load_state_dict(state)
    ids = torch.tensor([token_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, :-1]
    return torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]


def test_both_transports_give_vllm_the_learners_weights(local_ray, quick_tiny_model, tmp_path):
    from actors.dialog import DialogConfig
    from actors.inference import InferencePool
    from engines.generation import EngineConfig
    from sandbox import SandboxConfig

    config = _config(lr=1e-3, warmup_steps=0)
    group = LearnerGroup(config, ModelConfig(str(quick_tiny_model)))
    pool = None
    try:
        group.train(synthetic_rollouts(8, seed=1, vocab_size=VOCAB), iteration=0)
        exported = tmp_path / "policy"
        group.export_policy(exported)
        # The export is a Hugging Face folder that vLLM serves as it is.
        pool = InferencePool(
            ModelConfig(str(exported)),
            EngineConfig(backend="vllm", max_model_len=512),
            DialogConfig(),
            SandboxConfig(workers=1),
            num_actors=1,
            actor_options=lambda index: {"num_cpus": 1},
        )
        [engine] = pool.actors
        sequence = synthetic_rollouts(1, seed=99, vocab_size=VOCAB)[0].token_ids

        def engine_logprobs():
            return torch.tensor(ray.get(engine.sequence_logprobs.remote(sequence)))

        def learner_logprobs():
            return _logprobs(group.parameters()[0]["policy"], exported, sequence)

        assert torch.allclose(engine_logprobs(), learner_logprobs(), rtol=0, atol=1e-4)
        for version, transport in ((1, "object_store"), (2, "distributed")):
            group.train(synthetic_rollouts(8, seed=1 + version, vocab_size=VOCAB), version)
            learner = learner_logprobs()
            assert (engine_logprobs() - learner).abs().max() > 1e-3  # the engine is behind
            group.sync_weights(pool, version, transport)
            assert ray.get(engine.weight_version.remote()) == version
            assert torch.allclose(engine_logprobs(), learner, rtol=0, atol=1e-4), transport
    finally:
        if pool is not None:
            pool.shutdown()
        group.shutdown()


def _restarted(actor) -> None:
    """Kill `actor` and let Ray restart it; returns once the new one answers: from the
    model's files (version 0), in no weight group."""
    from actors.pool import ask_every

    ray.kill(actor, no_restart=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            [version] = ask_every([actor], lambda a: a.weight_version.remote(), 120)
        except ray.exceptions.RayActorError:  # the call reached the dying one
            continue
        if version == 0:  # not the one killed, which had weights
            assert ray.get(actor.weight_group.remote()) is None
            return
    raise AssertionError("Ray did not restart the killed inference actor within 120 s")


def test_an_engine_restarted_between_syncs_catches_up_and_rejoins_the_broadcast(
    local_ray, quick_tiny_model
):
    from actors.dialog import DialogConfig
    from actors.inference import InferencePool
    from actors.seeds import EpisodeSeeds
    from engines.generation import EngineConfig, SamplingConfig
    from problems.toy import generate_toy
    from sandbox import SandboxConfig

    group = LearnerGroup(
        _config(lr=1e-3, warmup_steps=0, transport="distributed"),
        ModelConfig(str(quick_tiny_model)),
    )
    pool = None
    try:
        pool = InferencePool(
            ModelConfig(str(quick_tiny_model)),
            EngineConfig(backend="hf"),
            DialogConfig(sampling=SamplingConfig(max_new_tokens=4)),
            SandboxConfig(workers=1),
            num_actors=2,
            chunk_size=1,
            actor_options=lambda index: {"num_cpus": 1},
        )
        sequence = synthetic_rollouts(1, seed=99, vocab_size=VOCAB)[0].token_ids

        def follow_the_learner(actors: list, version: int) -> None:
            """The engines serve `version`, and their log-probs are the learner's."""
            learner = _logprobs(group.parameters()[0]["policy"], quick_tiny_model, sequence)
            for actor in actors:
                engine = torch.tensor(ray.get(actor.sequence_logprobs.remote(sequence)))
                assert ray.get(actor.weight_version.remote()) == version
                assert torch.allclose(engine, learner, rtol=0, atol=1e-5), version

        def train_and_sync(version: int, transport: str) -> set:
            """The weight groups the engines are in after the sync."""
            group.train(synthetic_rollouts(8, seed=version, vocab_size=VOCAB), version - 1)
            group.sync_weights(pool, version, transport)
            follow_the_learner(pool.actors, version)
            return set(ray.get([actor.weight_group.remote() for actor in pool.actors]))

        [first] = train_and_sync(1, "distributed")
        restarted = pool.actors[1]
        _restarted(restarted)
        rollouts = pool.play(generate_toy("valid", 4), EpisodeSeeds(0, "train", 1))
        assert {r.weight_version for r in rollouts} == {1}
        # Two chunks each: the restarted engine caught up from the object store to play.
        follow_the_learner([restarted], 1)
        # The group lost a member: every engine is in a new one, the restarted one too.
        [second] = train_and_sync(2, "distributed")
        assert second != first
        # The object store's path as before; the broadcast's group is still whole after it.
        assert train_and_sync(3, "object_store") == {second}
        assert train_and_sync(4, "distributed") == {second}
    finally:
        if pool is not None:
            pool.shutdown()
        group.shutdown()
