"""The plan of a training run, on paper (`python -m launch.train ... dry_run=true`): where
the actors go, how big the model is, what each GPU holds, and how long an iteration and
the run should take. Nothing is started and nothing is written.

The model is counted, not looked up: it is built from its folder's config.json, or from
`model.architecture` when there is no folder, on the meta device (no memory, no weights).
Memory per learner rank is DeepSpeed's own estimate of the model states (16-bit weights,
fp32 master weights, gradients and Adam states, no offload); activations, the KV cache
and the allocator's slack come on top. Tokens and time follow from the `cluster.*`
figures, which are assumptions; the model is one of mean throughputs, without the
sandbox's time, the slowest dialog of an iteration, evaluations or checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from engines.generation import ModelConfig
from launch.train_config import ROLES, ClusterConfig, TrainConfig, role_resource

GIB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
"""Bytes per parameter of each weight dtype."""
LEARNER_PASSES = 2 + 2 / 3
"""Learner work per trained token, in forward+backward passes of one model: the policy's
and the value model's (2), plus the forwards of the reference and the old values (a
forward is about a third of a forward+backward: 2 x 1/3)."""


@dataclass(frozen=True)
class PaperRun:
    training_gpus: int
    inference_gpus: int
    hours: float
    """About how long one run took."""


PAPER_RUNS = {
    "paper_8b": PaperRun(training_gpus=128, inference_gpus=160, hours=20),
    "paper_70b": PaperRun(training_gpus=1024, inference_gpus=1280, hours=20),
}
"""The H100s Gehring et al. (2025) report for each `cluster.name`."""


@dataclass(frozen=True)
class Placement:
    learner_gpus: int
    """One per learner rank (0 on CPU), all in one placement group."""
    inference_gpus: float
    """Engines x GPUs per engine."""
    total_gpus: float
    learner_nodes: int
    """Nodes of `gpus_per_node` GPUs the learner fills (learner and engines apart)."""
    inference_nodes: int


@dataclass(frozen=True)
class ModelSize:
    params: int
    """The policy's parameters (a tied embedding counted once)."""
    largest_layer: int
    """Parameters of its largest module, own ones only: what ZeRO-3 gathers at once."""
    value_params: int
    """The value model's: the policy's backbone and a scalar head."""
    value_largest_layer: int
    source: str
    """Where the architecture came from: a config.json, or `model.architecture`."""


@dataclass(frozen=True)
class LearnerMemory:
    """Bytes of model states per learner rank."""

    policy: int
    value: int
    reference: int
    total: int


@dataclass(frozen=True)
class IterationEstimate:
    generated_tokens: float
    trained_tokens: float
    busy_engines: int
    """Engines that get a chunk of dialogs."""
    generate_s: float
    train_s: float
    sync_bytes: float
    """The policy's weights in `model.dtype`, sent to every engine."""
    sync_s: float
    iteration_s: float
    run_h: float
    """All `trainer.iterations`, in hours."""


@dataclass(frozen=True)
class DialogBudget:
    """What one dialog may take, in tokens, and the KV cache it needs in an engine."""

    max_tokens: int
    """`dialog.max_model_len`: prompt, replies and feedback turns together."""
    reply_tokens: int
    """`dialog.sampling.max_new_tokens`: one reply at most."""
    model_context: int | None
    """The model's own context window (`max_position_embeddings`), if known."""
    kv_bytes_per_dialog: int | None
    """KV cache of one dialog at full length (None without an architecture)."""
    dialogs_per_engine: int
    """Dialogs one engine decodes at once: a chunk's pipeline group."""

    @property
    def longest_prompt(self) -> int:
        """The longest first prompt that leaves room for a reply (longer ones are dropped)."""
        return self.max_tokens - self.reply_tokens

    @property
    def kv_bytes_per_engine(self) -> int | None:
        """KV cache of the dialogs one engine decodes at once, all at full length."""
        if self.kv_bytes_per_dialog is None:
            return None
        return self.kv_bytes_per_dialog * self.dialogs_per_engine


def dialog_budget(config: TrainConfig, architecture=None) -> DialogBudget:
    """The dialog's token budget and KV cache under `config` (`architecture`: the
    model's transformers config, if known)."""
    dialog = config.dialog
    per_token = (
        None if architecture is None else kv_cache_bytes_per_token(architecture, config.model.dtype)
    )
    return DialogBudget(
        max_tokens=dialog.max_model_len,
        reply_tokens=dialog.sampling.max_new_tokens,
        model_context=getattr(architecture, "max_position_embeddings", None),
        kv_bytes_per_dialog=None if per_token is None else per_token * dialog.max_model_len,
        dialogs_per_engine=math.ceil(config.actors.chunk_size / dialog.pipeline_groups),
    )


SCHEDULE_SUMS = {"sync": "generate + train + sync", "async": "max(generate, train) + sync"}
"""How `iteration_seconds` adds up an iteration, by `trainer.schedule`."""


@dataclass(frozen=True)
class Plan:
    config: TrainConfig
    placement: Placement
    dialog: DialogBudget
    """The dialog's token budget and the KV cache it takes."""
    size: ModelSize | None
    """None: no local config.json and no `model.architecture`."""
    learner: LearnerMemory | None
    """None without a size, or for a ZeRO stage DeepSpeed does not estimate (0, 1)."""
    inference_weights: float | None
    """Bytes of weights per inference GPU (per engine on CPU)."""
    iteration: IterationEstimate | None
    """None without a size or without every `cluster.*` figure."""


def placement(
    ranks: int, learner_on_gpu: bool, engines: int, gpus_per_engine: float, gpus_per_node: int
) -> Placement:
    """Ray's GPU reservations: `ranks` learner actors of one GPU each (none on CPU) and
    `engines` inference actors of `gpus_per_engine` each, learner and engines on nodes of
    their own of `gpus_per_node` GPUs."""
    learner = ranks if learner_on_gpu else 0
    inference = engines * gpus_per_engine
    return Placement(
        learner_gpus=learner,
        inference_gpus=inference,
        total_gpus=learner + inference,
        learner_nodes=math.ceil(learner / gpus_per_node),
        inference_nodes=math.ceil(inference / gpus_per_node),
    )


def count_parameters(module) -> tuple[int, int]:
    """(parameters, largest module's own parameters) of a torch module, shared ones
    counted once, as DeepSpeed's `model_to_params` counts them (which dedups by data
    pointer, which meta tensors do not have)."""
    total = sum(p.numel() for p in module.parameters())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in module.modules())
    return total, largest


def model_architecture(model: ModelConfig) -> tuple[object, str] | None:
    """(the transformers config, where it came from) of the model folder's config.json, or
    of `model.architecture` if there is no folder; None if there is neither."""
    from transformers import AutoConfig

    location = Path(model.location())
    # location() makes an existing local folder absolute; a hub id stays relative.
    config_file = location / "config.json"
    if location.is_absolute() and config_file.is_file():
        return AutoConfig.from_pretrained(location), str(config_file)
    if model.architecture:
        values = dict(model.architecture)
        return AutoConfig.for_model(values.pop("model_type"), **values), "model.architecture"
    return None


def kv_cache_bytes_per_token(architecture, dtype: str) -> int:
    """Bytes of KV cache one token takes in an engine: keys and values of every layer's
    key/value heads, in `dtype`."""
    head_dim = getattr(architecture, "head_dim", None) or (
        architecture.hidden_size // architecture.num_attention_heads
    )
    kv_heads = getattr(architecture, "num_key_value_heads", None) or (
        architecture.num_attention_heads
    )
    return 2 * architecture.num_hidden_layers * kv_heads * head_dim * DTYPE_BYTES[dtype]


def model_size(model: ModelConfig) -> ModelSize | None:
    """The policy's and the value model's sizes, built on the meta device from
    `model_architecture`; None without one."""
    found = model_architecture(model)
    if found is None:
        return None
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    from learner.value_model import ValueModel

    architecture, source = found
    with torch.device("meta"):
        policy = AutoModelForCausalLM.from_config(architecture)
        value = ValueModel(AutoModel.from_config(architecture), architecture.hidden_size)
    return ModelSize(*count_parameters(policy), *count_parameters(value), source=source)


def learner_memory(
    size: ModelSize, ranks: int, zero_stage: int, reference_bytes: int
) -> LearnerMemory | None:
    """Bytes of model states per learner rank: DeepSpeed's estimate for the policy and the
    value model (ZeRO-2 or ZeRO-3, no offload; None for other stages), and the frozen
    reference at `reference_bytes` per parameter, sharded over the `ranks` under ZeRO-3
    and whole on each rank under ZeRO-2."""
    # DeepSpeed's GPU figures depend on the total GPUs only, not on how nodes split them.
    if zero_stage == 2:
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        def trained(params: int, largest_layer: int) -> int:
            return estimate_zero2_model_states_mem_needs(
                params, num_gpus_per_node=ranks, num_nodes=1, cpu_offload=False
            )[1]

        reference = reference_bytes * size.params
    elif zero_stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        def trained(params: int, largest_layer: int) -> int:
            return estimate_zero3_model_states_mem_needs(
                params, largest_layer, num_gpus_per_node=ranks, num_nodes=1, cpu_offload=False
            )[1]

        reference = reference_bytes * size.params // ranks
    else:
        return None
    policy = trained(size.params, size.largest_layer)
    value = trained(size.value_params, size.value_largest_layer)
    return LearnerMemory(policy, value, reference, policy + value + reference)


def iteration_tokens(
    rollouts: int, turns: float, prompt_tokens: float, reply_tokens: float
) -> tuple[float, float]:
    """(generated, trained) tokens of one iteration of `rollouts` dialogs of `turns` turns,
    each turn adding `prompt_tokens` and `reply_tokens`: the engines generate the
    replies; the learner trains on whole dialogs, prompts included."""
    return rollouts * turns * reply_tokens, rollouts * turns * (prompt_tokens + reply_tokens)


def busy_engines(rollouts: int, chunk_size: int, engines: int) -> int:
    """Engines with work: the pool hands out chunks of `chunk_size` dialogs."""
    return min(engines, math.ceil(rollouts / chunk_size))


def generate_seconds(generated_tokens: float, engines: int, tokens_per_s: float) -> float:
    """Seconds for `engines` generating `tokens_per_s` each to produce the tokens."""
    return generated_tokens / (engines * tokens_per_s)


def train_seconds(
    trained_tokens: float, ranks: int, tokens_per_s: float, passes: float = LEARNER_PASSES
) -> float:
    """Seconds for `ranks` GPUs, each taking `tokens_per_s` tokens per second through one
    model's forward and backward, to do `passes` such passes over the tokens."""
    return trained_tokens * passes / (ranks * tokens_per_s)


def sync_seconds(weight_bytes: float, gbytes_per_s: float) -> float:
    """Seconds to bring `weight_bytes` to the engines at `gbytes_per_s` (1e9 bytes/s)."""
    return weight_bytes / (gbytes_per_s * 1e9)


def iteration_seconds(generate_s: float, train_s: float, sync_s: float, schedule: str) -> float:
    """Seconds per iteration: `sync` generates, trains, then syncs; `async` generates the
    next iteration's rollouts while the learner trains, so the slower of the two counts."""
    if schedule == "async":
        return max(generate_s, train_s) + sync_s
    return generate_s + train_s + sync_s


def estimate_iteration(config: TrainConfig, size: ModelSize) -> IterationEstimate | None:
    """Tokens and time of one iteration and of the run, from the `cluster.*` figures
    (None if one is missing)."""
    cluster, trainer = config.cluster, config.trainer
    figures = (
        cluster.expected_turns,
        cluster.expected_prompt_tokens,
        cluster.expected_reply_tokens,
        cluster.generate_tokens_per_s,
        cluster.train_tokens_per_s,
        cluster.weight_sync_gbytes_per_s,
    )
    if None in figures:
        return None
    generated, trained = iteration_tokens(
        trainer.rollouts_per_iteration,
        cluster.expected_turns,
        cluster.expected_prompt_tokens,
        cluster.expected_reply_tokens,
    )
    busy = busy_engines(
        trainer.rollouts_per_iteration, config.actors.chunk_size, config.actors.num_inference
    )
    generate_s = generate_seconds(generated, busy, cluster.generate_tokens_per_s)
    train_s = train_seconds(trained, config.learner.num_ranks, cluster.train_tokens_per_s)
    sync_bytes = size.params * DTYPE_BYTES[config.model.dtype]
    sync_s = sync_seconds(sync_bytes, cluster.weight_sync_gbytes_per_s)
    iteration_s = iteration_seconds(generate_s, train_s, sync_s, trainer.schedule)
    return IterationEstimate(
        generated_tokens=generated,
        trained_tokens=trained,
        busy_engines=busy,
        generate_s=generate_s,
        train_s=train_s,
        sync_bytes=sync_bytes,
        sync_s=sync_s,
        iteration_s=iteration_s,
        run_h=iteration_s * trainer.iterations / 3600,
    )


def make_plan(config: TrainConfig) -> Plan:
    """Everything the dry run prints, computed from `config`."""
    learner, actors = config.learner, config.actors
    where = placement(
        learner.num_ranks,
        learner.device == "cuda",
        actors.num_inference,
        actors.gpus_per_inference,
        config.cluster.gpus_per_node,
    )
    found = model_architecture(config.model)
    budget = dialog_budget(config, None if found is None else found[0])
    size = model_size(config.model)
    if size is None:
        return Plan(config, where, budget, None, None, None, None)
    learner_dtype = learner.dtype if learner.device == "cuda" else "float32"
    return Plan(
        config=config,
        placement=where,
        dialog=budget,
        size=size,
        learner=learner_memory(
            size, learner.num_ranks, learner.zero_stage, DTYPE_BYTES[learner_dtype]
        ),
        inference_weights=size.params
        * DTYPE_BYTES[config.model.dtype]
        / config.engine.tensor_parallel_size,
        iteration=estimate_iteration(config, size),
    )


def dialog_lines(budget: DialogBudget, config: TrainConfig) -> list[str]:
    """The dry run's lines on the dialog's length and the engines' KV cache."""
    context = f"; the model's context is {budget.model_context:,}" if budget.model_context else ""
    lines = [
        f"dialog: up to {budget.max_tokens:,} tokens (dialog.max_model_len{context}), "
        f"{config.dialog.max_turns} replies of up to {budget.reply_tokens:,} "
        f"(dialog.sampling.max_new_tokens); first prompts over {budget.longest_prompt:,} "
        "tokens are dropped from training",
    ]
    if budget.kv_bytes_per_engine is not None:
        engine = config.engine
        room = (
            f"engine.kv_cache_gib={engine.kv_cache_gib}"
            if engine.device == "cpu"
            else f"vLLM sizes it from engine.gpu_memory_utilization={engine.gpu_memory_utilization}"
        )
        lines.append(
            f"  KV cache {budget.kv_bytes_per_dialog / GIB:.2f} GiB per dialog at full length; "
            f"{budget.dialogs_per_engine} at once per engine (chunks of "
            f"{config.actors.chunk_size} in {config.dialog.pipeline_groups} pipeline groups): "
            f"{budget.kv_bytes_per_engine / GIB:.2f} GiB ({room})"
        )
    return lines


def node_roles(cluster: ClusterConfig) -> str:
    """Which nodes each kind of actor goes on, as the dry run says it."""
    if not any(role_resource(cluster, role) for role in ROLES):
        return "any node with room (no node roles: cluster.*_resource are null)"
    where = [
        f"{role} on `{role_resource(cluster, role)}`"
        if role_resource(cluster, role)
        else f"{role} anywhere"
        for role in ROLES
    ]
    return f"{', '.join(where)} (custom resources the nodes declare at `ray start --resources`)"


def format_plan(plan: Plan) -> str:
    """The plan as the dry run prints it."""
    config, where = plan.config, plan.placement
    learner, actors, cluster = config.learner, config.actors, config.cluster
    on_gpu, engine_on_gpu = learner.device == "cuda", config.engine.device == "cuda"
    per_rank = "GPU" if on_gpu else "rank, in CPU memory"
    per_engine = "GPU" if engine_on_gpu else "engine, in CPU memory"
    ranks = f"{learner.num_ranks} ranks x 1 GPU" if on_gpu else f"{learner.num_ranks} ranks on CPU"
    engines = f"{actors.num_inference} engines " + (
        f"x {actors.gpus_per_inference:g} GPU{'' if actors.gpus_per_inference == 1 else 's'}"
        if actors.gpus_per_inference
        else "on CPU"
    )
    total = f"{where.total_gpus:g} GPUs" + (
        f" on {where.learner_nodes + where.inference_nodes} nodes ({where.learner_nodes} "
        f"learner + {where.inference_nodes} inference)"
        if where.total_gpus
        else f" (CPU only; Ray declares cluster.num_cpus={cluster.num_cpus})"
    )
    lines = [
        f"dry run: the plan of cluster={cluster.name} with {config.model.path}; nothing started",
        f"placement ({cluster.gpus_per_node} GPUs per node)",
        f"  learner    {where.learner_gpus:g} GPUs: {ranks}, one placement group "
        f"(ZeRO-{learner.zero_stage}, {learner.dtype if on_gpu else 'float32'})",
        f"  inference  {where.inference_gpus:g} GPUs: {engines} "
        f"(tensor parallel {config.engine.tensor_parallel_size})",
        f"  total      {total}",
        f"  CPUs       {learner.num_ranks * learner.cpus_per_rank:g} learner "
        f"({learner.cpus_per_rank:g} per rank) + "
        f"{actors.num_inference * actors.cpus_per_inference:g} inference "
        f"({actors.cpus_per_inference:g} per engine) + "
        f"{actors.num_sandbox * actors.cpus_per_sandbox:g} sandbox "
        f"({actors.cpus_per_sandbox:g} per sandbox actor)",
        f"  nodes      {node_roles(cluster)}",
    ]
    lines += dialog_lines(plan.dialog, config)
    size = plan.size
    if size is None:
        lines.append(
            f"model: {config.model.path} is no local folder and model.architecture is empty: "
            "not sized (build it, point model.path at a copy, or set model.architecture)"
        )
        return "\n".join(lines)
    lines += [
        f"model (architecture from {size.source}, built on the meta device)",
        f"  policy     {size.params:,} parameters; largest layer {size.largest_layer:,}",
        f"  value      {size.value_params:,} parameters (backbone + scalar head); "
        f"largest layer {size.value_largest_layer:,}",
    ]
    memory = plan.learner
    if memory is None:
        lines.append(
            f"model states per learner {per_rank}: not estimated for ZeRO-{learner.zero_stage} "
            "(DeepSpeed estimates ZeRO-2 and ZeRO-3)"
        )
    else:
        shard = "sharded over the ranks" if learner.zero_stage == 3 else "whole on every rank"
        lines += [
            f"model states per learner {per_rank} (DeepSpeed's ZeRO-{learner.zero_stage} "
            "estimate for 16-bit training, no offload; activations extra)",
            f"  policy     {memory.policy / GIB:6.2f} GiB",
            f"  value      {memory.value / GIB:6.2f} GiB",
            f"  reference  {memory.reference / GIB:6.2f} GiB (frozen, {shard})",
            f"  sum        {memory.total / GIB:6.2f} GiB",
        ]
    lines.append(
        f"weights per inference {per_engine}: {plan.inference_weights / GIB:.2f} GiB "
        f"({config.model.dtype}, tensor parallel {config.engine.tensor_parallel_size}); "
        "the rest holds the KV cache"
    )
    estimate = plan.iteration
    if estimate is None:
        lines.append(
            "iteration: not estimated (set cluster.expected_turns, expected_prompt_tokens, "
            "expected_reply_tokens, generate_tokens_per_s, train_tokens_per_s, "
            "weight_sync_gbytes_per_s)"
        )
    else:
        trainer = config.trainer
        dialog_tokens = estimate.trained_tokens / trainer.rollouts_per_iteration
        lines += [
            f"iteration (assumed in cluster.*: {cluster.expected_turns:g} turns of "
            f"{cluster.expected_prompt_tokens:g} prompt + {cluster.expected_reply_tokens:g} "
            "reply tokens)",
            f"  tokens     {estimate.generated_tokens:,.0f} generated; "
            f"{estimate.trained_tokens:,.0f} trained (whole dialogs of ~{dialog_tokens:,.0f}; "
            f"dialog.max_model_len {config.dialog.max_model_len})",
            f"  generate   {estimate.generate_s:6.1f} s: {estimate.busy_engines} of "
            f"{actors.num_inference} engines busy ({trainer.rollouts_per_iteration} rollouts "
            f"in chunks of {actors.chunk_size}) x {cluster.generate_tokens_per_s:,g} tokens/s",
            f"  train      {estimate.train_s:6.1f} s: {learner.num_ranks} ranks x "
            f"{cluster.train_tokens_per_s:,g} tokens/s, {LEARNER_PASSES:.3g} passes per token "
            "(policy and value forward+backward; reference and old values forward)",
            f"  sync       {estimate.sync_s:6.1f} s: {estimate.sync_bytes / 1e9:.1f} GB at "
            f"{cluster.weight_sync_gbytes_per_s:g} GB/s",
            f"  iteration  {estimate.iteration_s:6.1f} s ({trainer.schedule} schedule: "
            f"{SCHEDULE_SUMS[trainer.schedule]})",
            f"  run        {estimate.run_h:6.1f} h for {trainer.iterations} iterations "
            "(without sandbox time, stragglers, evaluations, checkpoints)",
        ]
    paper = PAPER_RUNS.get(cluster.name)
    if paper is not None:
        lines.append(
            f"paper (Gehring et al. 2025): {paper.training_gpus + paper.inference_gpus} H100s "
            f"({paper.training_gpus} training + {paper.inference_gpus} inference), "
            f"about {paper.hours:g} h per run"
        )
    return "\n".join(lines)
