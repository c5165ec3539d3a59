"""One rank of the learner group: a DeepSpeed engine each for the policy and the value
model, and the frozen reference model, training on the iteration's rollouts.

`LearnerRank` is a plain class; `learner.group` runs K of them as Ray actors. Every rank
reads the summaries of all of the iteration's rollouts (a few numbers each) and computes
the same plan from them (which rank trains which rollout, in which micro-batch), then
fetches and works on its own share only: no data moves between ranks but the gradients
DeepSpeed reduces.

One iteration:
1. Shuffle the iteration's episodes (seeded by iteration) into `updates_per_iteration`
   equal parts; known before any rollout is played.
2. As each chunk of rollouts arrives (the chunks an inference actor plays together),
   deal its rollouts with a reply to the ranks by length, and prepare them, without
   gradients: reference log-probs and old values; turn rewards with the KL penalty
   (against the behaviour log-probs the engine sampled with), returns and advantages
   (`learner.algo`). What a chunk gives depends on the chunk alone, not on when it came.
3. Once all are in, per part, one optimizer step: each rank's rollouts of the part in
   micro-batches (packed into rows under a token budget, `learner.packing`), each loss
   scaled so that the sum over micro-batches and ranks is the mean over the part's
   tokens (policy) and value points (value), as one big batch would give.
"""

from __future__ import annotations

import os
import random
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from engines import weight_broadcast
from engines.generation import ModelConfig
from engines.rollout import Rollout, RolloutSummary, StoredRollout

from . import algo
from .batch import TrainingBatch, collate, token_logprobs, value_points
from .config import LearnerConfig
from .packing import (
    MicroBatch,
    padding_fraction,
    placement,
    plan_micro_batches,
    split_across_ranks,
)
from .value_model import ValueModel

PAD_ID = 0
"""Padding token id of training batches (masked out: any id would do)."""
PREPARE_SUMS = (
    "reward",
    "kl_ref",
    "kl_ref_xx",
    "kl_ref_xn",
    "kl_ref_nn",
    "rollouts",
    "trained_tokens",
    "tokens",
)
"""What preparation sums over the group: first-turn returns, the log-ratio to the
reference over trained tokens (and per rollout: its square, times the rollout's token
count, the count squared: `algo.ratio_standard_error`), rollouts, trained tokens, tokens."""
UPDATE_SUMS = (
    "policy_loss",
    "clip_fraction",
    "approx_kl",
    "entropy",
    "value_loss",
    "tokens",
    "grad_norm",
)
"""What an update sums over the group (token-weighted losses and rates; k3 KL to the
behaviour policy and entropy over tokens; tokens computed; each rank's gradient norm)."""
TORCH_EXTENSIONS_DIR = Path(sys.prefix) / "torch_extensions"
"""Where `make install` builds DeepSpeed's CPU shared-memory comm op, so that no rank
compiles it at start-up."""


def lr_factor(step: int, warmup_steps: int, decay_steps: int, final_fraction: float) -> float:
    """Learning-rate multiplier of optimizer step `step` (from 0): linear to 1 over
    `warmup_steps` steps; then, if `decay_steps` > 0, linear down to `final_fraction` at
    step `decay_steps` and flat after it; else 1."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay_steps <= warmup_steps:
        return 1.0
    done = min(1.0, (step - warmup_steps) / (decay_steps - warmup_steps))
    return 1.0 - done * (1.0 - final_fraction)


def update_parts(count: int, updates: int, seed: int, iteration: int) -> list[list[int]]:
    """The iteration's rollouts (indices 0..count-1), shuffled by (seed, iteration), split
    into `updates` parts of near-equal size: one optimizer step each."""
    order = torch.randperm(
        count, generator=torch.Generator().manual_seed(seed * 100003 + iteration)
    )
    return [part.tolist() for part in torch.tensor_split(order, updates)]


def deepspeed_config(config: LearnerConfig) -> dict:
    """DeepSpeed's config: we own the accumulation boundary (micro-batch counts vary with
    the lengths), so one `step()` per update whatever the number of backwards.

    In bf16, gradients are accumulated over the micro-batches and reduced over the ranks
    in fp32: DeepSpeed would do both in bf16 (8 bits of mantissa) unless told, and an
    update sums dozens of micro-batches on each of up to 1024 ranks."""
    zero = {"stage": config.zero_stage, "overlap_comm": config.zero_stage == 2}
    bf16 = config.device != "cpu" and config.dtype == "bfloat16"
    settings = {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "zero_optimization": zero,
        "gradient_clipping": config.max_grad_norm,
        "bf16": {"enabled": bf16},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
    }
    if bf16:
        settings["data_types"] = {"grad_accum_dtype": "fp32"}
        settings["communication_data_type"] = "fp32"
    return settings


def parameter_groups(module, weight_decay: float) -> list[dict]:
    """AdamW's parameter groups: weight decay on matrices (linear layers, embeddings),
    none on vectors (biases, norm scales), the usual practice: decaying a norm's scale
    towards 0 shrinks that layer's output, which nothing in the loss asks for. Under
    ZeRO-3 a parameter's own shape is `ds_shape` (its data is a shard)."""
    decayed, undecayed = [], []
    for parameter in module.parameters():
        if not parameter.requires_grad:
            continue
        shape = getattr(parameter, "ds_shape", parameter.shape)
        (decayed if len(shape) >= 2 else undecayed).append(parameter)
    return [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": undecayed, "weight_decay": 0.0},
    ]


class NoReplyToTrain(ValueError):
    """An update's share of the iteration's rollouts has none with a reply: their prompts
    left no room for one."""


@dataclass
class Prepared:
    """What preparation computed for one rollout, at its value points: its turns (the
    paper), or its reply tokens under `learner.value_level=token`; in batch order."""

    old_values: Tensor
    """[P] the value before this iteration's updates: V(c_t), or V of each token's prefix."""
    returns: Tensor
    """[P] G_t of the point's turn."""
    advantages: Tensor
    """[P] G_t minus the point's value."""


class LearnerRank:
    """Rank `rank` of `world_size`; `setup` joins the group and loads the models."""

    def __init__(self, config: LearnerConfig, model: ModelConfig, rank: int, world_size: int):
        self.config = config
        self.model_config = model
        self.rank = rank
        self.world_size = world_size
        self.weight_store = None
        self.weight_group = None
        self.weight_buckets = None
        self._rendezvous = None
        self.first_step_at: float | None = None
        self._new_iteration()

    def _host(self) -> str:
        """Where this rank's rendezvous ports listen: `config.bind_host`, or this node's
        address (reachable from the cluster's other nodes) if that is None."""
        import ray

        return self.config.bind_host or ray.util.get_node_ip_address()

    def address(self) -> tuple[str, int]:
        """Rank 0: open the group's rendezvous (listening from now on); its address."""
        self._rendezvous = weight_broadcast.listen(self._host())
        return self._rendezvous.getsockname()[:2]

    def setup(self, master_addr: str, master_port: int) -> None:
        """Join torch.distributed (gloo on CPU, nccl on GPUs) and build the three models."""
        import deepspeed
        import torch.distributed as dist
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as transformers_logging

        # The value model loads a causal LM's files without its head: not news, per rank.
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
        config = self.config
        os.environ.update(
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
            RANK=str(self.rank),
            WORLD_SIZE=str(self.world_size),
            # Ray gives each GPU rank its own visible device: always device 0 of its own.
            LOCAL_RANK="0",
        )
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(TORCH_EXTENSIONS_DIR))
        if config.device == "cpu":
            torch.set_num_threads(max(1, int(config.cpus_per_rank)))
            self.device = torch.device("cpu")
        else:
            self.device = torch.device("cuda", 0)
            torch.cuda.set_device(self.device)
        self._seed(config.seed * 1000 + self.rank)
        store = weight_broadcast.rendezvous_store(
            master_addr,
            master_port,
            self.world_size,
            listener=self._rendezvous if self.rank == 0 else None,
        )
        dist.init_process_group(
            "gloo" if config.device == "cpu" else "nccl",
            store=store,
            rank=self.rank,
            world_size=self.world_size,
        )
        ds_config = deepspeed_config(config)
        if config.zero_stage == 3:
            from transformers.integrations import HfDeepSpeedConfig

            # Alive while the models load: transformers then loads them partitioned.
            self._zero3_loading = HfDeepSpeedConfig(ds_config)
        location, dtype = self.model_config.location(), config.torch_dtype
        policy = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
        value = ValueModel.from_pretrained(location, dtype)
        reference = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
        if config.gradient_checkpointing:
            policy.gradient_checkpointing_enable()
            value.backbone.gradient_checkpointing_enable()
        self.policy = self._engine(policy, config.lr, ds_config)
        self.value = self._engine(value, config.value_lr, ds_config)
        reference.requires_grad_(False)
        if config.zero_stage == 3:
            inference = {**ds_config, "zero_optimization": {"stage": 3}}
            inference.pop("managed_gradient_accumulation")
            self.reference = deepspeed.initialize(
                model=reference, config=inference, dist_init_required=False
            )[0]
        else:
            self.reference = reference.to(self.device)
        self.reference.eval()
        self.updates_done = 0

    def _engine(self, module, lr: float, ds_config: dict):
        import deepspeed

        config = self.config
        optimizer = torch.optim.AdamW(
            parameter_groups(module, config.weight_decay), lr=lr, betas=config.betas
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: lr_factor(
                step, config.warmup_steps, config.lr_decay_steps, config.lr_final_fraction
            ),
        )
        engine, *_ = deepspeed.initialize(
            model=module,
            optimizer=optimizer,
            lr_scheduler=schedule,
            config=ds_config,
            dist_init_required=False,
        )
        return engine

    @staticmethod
    def _seed(seed: int) -> None:
        random.seed(seed)
        torch.manual_seed(seed)

    # --- training -------------------------------------------------------------------

    def train(self, source, iteration: int, count: int) -> dict:
        """One iteration on the `count` stored rollouts (`engines.rollout.StoredRollout`)
        of `iteration`: `source` is their list, or the replay queue actor that hands them
        out as they are played. Each chunk's rollouts are prepared as soon as all of them
        are in, while the rest are still being played; the updates start once all
        `count` are. The rank fetches only the rollouts it trains on. Returns the
        iteration's metrics (all ranks agree): per update and over the iteration."""
        config, world = self.config, self.world_size
        parts = update_parts(count, config.updates_per_iteration, config.seed, iteration)
        if min(len(part) for part in parts) < world:
            raise ValueError(
                f"{count} rollouts in {config.updates_per_iteration} updates leave fewer "
                f"sequences per update than the {world} learner ranks"
            )
        self._new_iteration()
        started = time.perf_counter()
        prepared: dict[int, Prepared] = {}
        sums_by_chunk: dict[int, dict[str, float]] = {}
        waiting: dict[int, list[StoredRollout]] = {}
        wait_s = prepare_s = 0.0
        clock = started
        for arrived in self._arrivals(source, iteration, count):
            last_arrival = time.perf_counter()
            wait_s += last_arrival - clock
            prepared_early = len(sums_by_chunk)
            for stored in arrived:
                summary = stored.summary
                if summary.iteration != iteration or summary.episode in self.summaries:
                    raise RuntimeError(
                        f"iteration {iteration} got episode {summary.episode} of iteration "
                        f"{summary.iteration}{' twice' if summary.iteration == iteration else ''}"
                    )
                self.summaries[summary.episode] = summary
                self.references[summary.episode] = stored.reference
                chunk = waiting.setdefault(summary.group, [])
                chunk.append(summary.episode)
                if len(chunk) == summary.group_size:
                    episodes = sorted(waiting.pop(summary.group))
                    sums_by_chunk[summary.group] = self._prepare(episodes, prepared)
            clock = time.perf_counter()
            prepare_s += clock - last_arrival
        if waiting or len(self.summaries) != count:
            raise RuntimeError(
                f"iteration {iteration}: {len(self.summaries)} rollouts of {count} came, "
                f"chunks {sorted(waiting)} incomplete"
            )
        totals = dict.fromkeys(PREPARE_SUMS, 0.0)
        for chunk in sorted(sums_by_chunk):
            for name, value in sums_by_chunk[chunk].items():
                totals[name] += value
        totals = self._all_sum_named(totals)
        trainable = {e for e, summary in self.summaries.items() if summary.turns}
        parts = [[e for e in part if e in trainable] for part in parts]
        if not all(parts):
            raise NoReplyToTrain(f"iteration {iteration}: an update has no rollout with a reply")
        plans = [
            plan_micro_batches(
                self.lengths,
                [[e for e in part if self.trainer_of[e] == r] for r in range(world)],
                config.micro_batch_tokens,
            )
            for part in parts
        ]
        self._hold_a_stand_in()
        self.first_step_at = None
        updating = time.perf_counter()
        updates = [
            self._update(part, plan[self.rank], prepared)
            for part, plan in zip(parts, plans, strict=True)
        ]
        elapsed = time.perf_counter() - started
        update_s = started + elapsed - updating
        metrics = {
            "updates": updates,
            "reward_mean": totals["reward"] / count,
            "kl_ref": totals["kl_ref"] / max(totals["trained_tokens"], 1),
            "kl_ref_stderr": algo.ratio_standard_error(
                totals["kl_ref"],
                totals["trained_tokens"],
                totals["kl_ref_xx"],
                totals["kl_ref_xn"],
                totals["kl_ref_nn"],
                int(totals["rollouts"]),
            ),
            "padding_fraction": padding_fraction(
                self.lengths, [[b for plan in plans for b in plan[r]] for r in range(world)]
            ),
            "tokens": int(totals["tokens"]),
            "fetched": len(self.rollouts),
            "chunks_prepared_before_last": prepared_early,
            "time_wait_rollouts_s": wait_s,
            "time_prepare_s": prepare_s,
            "time_last_rollout_to_step_s": self.first_step_at - last_arrival,
            "time_update_s": update_s,
            "time_train_s": elapsed,
        }
        self._new_iteration()  # the rollouts can go from the object store
        return metrics

    def _new_iteration(self) -> None:
        """Forget the last iteration's rollouts: what is known of them, by episode."""
        self.summaries: dict[int, RolloutSummary] = {}
        self.references: dict[int, object] = {}
        self.lengths: dict[int, int] = {}
        self.rollouts: dict[int, Rollout] = {}
        """The rollouts fetched: those this rank trains on (and a stand-in)."""
        self.trainer_of: dict[int, int] = {}
        """The rank that prepares and trains each rollout with a reply."""

    @staticmethod
    def _arrivals(source, iteration: int, count: int):
        """The stored rollouts of `iteration`, list after list, as they come."""
        import ray

        if isinstance(source, list):
            yield source
            return
        start = 0
        while start < count:
            arrived = ray.get(source.read.remote(iteration, start, count, iteration - 1))
            start += len(arrived)
            yield arrived

    def _fetch(self, episodes: list[int]) -> None:
        """Fetch the rollouts of `episodes` from the object store."""
        import ray

        wanted = [e for e in episodes if e not in self.rollouts]
        for episode, rollout in zip(
            wanted, ray.get([self.references[e] for e in wanted]), strict=True
        ):
            self.rollouts[episode] = rollout

    def _hold_a_stand_in(self) -> None:
        """Make sure this rank holds a rollout that an empty micro-batch can run."""
        if not self.rollouts:
            self._fetch([min(self.trainer_of)])

    def _batch(self, micro_batch: MicroBatch) -> tuple[list, TrainingBatch]:
        """The micro-batch's episodes in batch order, and its packed batch."""
        order, places = placement(self.lengths, micro_batch)
        batch = collate(
            [self.rollouts[episode] for episode in order],
            PAD_ID,
            places,
            self.config.value_level,
        )
        return order, batch.to(self.device)

    @staticmethod
    def _forward_logprobs(model, batch: TrainingBatch) -> tuple[Tensor, Tensor]:
        logits = model(**batch.model_inputs()).logits
        return token_logprobs(logits, batch).float(), logits

    def _values(self, batch: TrainingBatch) -> Tensor:
        """[P] the value model's values at the batch's value points (through DeepSpeed's
        engine: under ZeRO-3 its forward is what gathers the parameters)."""
        return self.value(**batch.model_inputs())[batch.value_rows, batch.value_positions].float()

    def _prepare(self, chunk: list[int], prepared: dict[int, Prepared]) -> dict[str, float]:
        """Deal the chunk's rollouts with a reply to the ranks (by length, the same on
        every rank), fetch this rank's, and prepare them: old values, returns and
        advantages into `prepared`; this rank's sums of the rewards, KL to the reference
        and tokens. Under ZeRO-3 every rank runs as many forward passes (collectives)."""
        config = self.config
        sums = dict.fromkeys(PREPARE_SUMS, 0.0)
        for episode in chunk:
            self.lengths[episode] = self.summaries[episode].tokens
        trainable = [e for e in chunk if self.summaries[e].turns]
        shares = split_across_ranks(self.lengths, trainable, self.world_size)
        for rank, share in enumerate(shares):
            self.trainer_of.update(dict.fromkeys(share, rank))
        self._fetch(shares[self.rank])
        plan = plan_micro_batches(self.lengths, shares, config.micro_batch_tokens)[self.rank]
        if config.zero_stage < 3:
            plan = [micro_batch for micro_batch in plan if micro_batch]
        elif not all(plan):
            self._hold_a_stand_in()
        stand_in = [[next(iter(self.rollouts))]] if self.rollouts else []
        with torch.no_grad():
            for micro_batch in plan:
                order, batch = self._batch(micro_batch or stand_in)
                reference, _ = self._forward_logprobs(self.reference, batch)
                values = self._values(batch)
                if not micro_batch:
                    continue
                # On the behaviour log-probs: no forward pass of the policy is needed here.
                returns, advantages = batch.targets(
                    reference, values, config.kl_beta, config.no_code_penalty
                )
                behaviour = batch.behaviour_logprobs
                point_returns = returns[batch.turn_of_point]
                episode_of_point = batch.episode_of_turn[batch.turn_of_point]
                first_turn = torch.ones_like(batch.last_turn)
                first_turn[1:] = batch.episode_of_turn[1:] != batch.episode_of_turn[:-1]
                # Per rollout: its tokens' summed log-ratio to the reference, and their count
                # (the standard error of kl_ref takes rollouts as the independent units).
                episode_of_token = batch.episode_of_turn[batch.turn_of_token]
                log_ratio = (behaviour - reference).to(torch.float64)
                per_rollout = torch.zeros(len(order), dtype=torch.float64, device=self.device)
                per_rollout.index_add_(0, episode_of_token, log_ratio)
                counts = torch.bincount(episode_of_token, minlength=len(order)).to(torch.float64)
                for name, value in (
                    ("reward", returns[first_turn].sum()),
                    ("kl_ref", log_ratio.sum()),
                    ("kl_ref_xx", (per_rollout**2).sum()),
                    ("kl_ref_xn", (per_rollout * counts).sum()),
                    ("kl_ref_nn", (counts**2).sum()),
                    ("rollouts", len(order)),
                    ("trained_tokens", len(behaviour)),
                    ("tokens", batch.real_tokens),
                ):
                    sums[name] += float(value)
                for position, episode in enumerate(order):
                    mine = episode_of_point == position
                    prepared[episode] = Prepared(
                        values[mine].cpu(), point_returns[mine].cpu(), advantages[mine].cpu()
                    )
        return sums

    def _update(
        self,
        part: list[int],
        micro_batches: list[MicroBatch],
        prepared: dict[int, Prepared],
    ) -> dict:
        """One optimizer step of policy and value on `part` (episodes with a reply), this
        rank running `micro_batches`. Returns the step's metrics, reduced over the group."""
        config, world = self.config, self.world_size
        started = time.perf_counter()
        lr = self.policy.get_lr()[0]
        part_tokens = sum(self.summaries[e].trained_tokens for e in part)
        part_points = sum(value_points(self.summaries[e], config.value_level) for e in part)
        # Sums over this rank's tokens (or turns); divided by the group's totals below.
        sums = dict.fromkeys(UPDATE_SUMS, 0.0)
        log_ratio_max = 0.0
        stand_in = [[next(iter(self.rollouts))]]
        self.policy.train()
        self.value.train()
        for micro_batch in micro_batches:
            order, batch = self._batch(micro_batch or stand_in)
            counts = 1.0 if micro_batch else 0.0  # an empty one only keeps step with the group
            old_values, returns, advantages = (
                torch.cat([self._prepared(prepared, e, name) for e in order]).to(self.device)
                for name in ("old_values", "returns", "advantages")
            )
            logprobs, logits = self._forward_logprobs(self.policy, batch)
            policy_loss, clip_fraction = algo.ppo_policy_loss(
                logprobs,
                batch.behaviour_logprobs,
                advantages[batch.point_of_token],
                config.clip_eps,
            )
            tokens = len(logprobs)
            self.policy.backward(policy_loss * (counts * world * tokens / part_tokens))
            value_loss = algo.clipped_value_loss(
                self._values(batch), old_values, returns, config.value_clip
            )
            points = len(old_values)
            self.value.backward(value_loss * (counts * world * points / part_points))
            with torch.no_grad():
                predicting = logits[batch.token_rows, batch.token_positions - 1].float()
                log_p = torch.log_softmax(predicting, -1)
                for name, value in (
                    ("policy_loss", policy_loss.item() * tokens),
                    ("clip_fraction", clip_fraction.item() * tokens),
                    ("approx_kl", algo.k3_kl(logprobs, batch.behaviour_logprobs).sum()),
                    ("entropy", -(log_p.exp() * log_p).sum()),
                    ("value_loss", value_loss.item() * points),
                    ("tokens", batch.real_tokens),
                ):
                    sums[name] += counts * float(value)
                if micro_batch:
                    gap = (logprobs - batch.behaviour_logprobs).abs().max()
                    log_ratio_max = max(log_ratio_max, float(gap))
        self.policy.step()
        self.value.step()
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()
        self.updates_done += 1
        grad_norm = self.policy.get_global_grad_norm()
        sums["grad_norm"] = float(grad_norm) if grad_norm is not None else float("nan")
        totals = self._all_sum_named(sums)
        elapsed = time.perf_counter() - started
        return {
            "policy_loss": totals["policy_loss"] / part_tokens,
            "value_loss": totals["value_loss"] / part_points,
            "clip_fraction": totals["clip_fraction"] / part_tokens,
            "approx_kl_behaviour": totals["approx_kl"] / part_tokens,
            "log_ratio_max": self._all_max(log_ratio_max),
            "entropy": totals["entropy"] / part_tokens,
            "grad_norm": totals["grad_norm"] / world,
            "tokens_per_s": totals["tokens"] / elapsed,
            "time_s": elapsed,
            "lr": lr,
        }

    def _prepared(self, prepared: dict[int, Prepared], episode: int, name: str) -> Tensor:
        """Preparation's `name` of `episode`; zeros for a stand-in this rank did not
        prepare (its losses count for nothing)."""
        if episode in prepared:
            return getattr(prepared[episode], name)
        return torch.zeros(value_points(self.summaries[episode], self.config.value_level))

    def _all_sum_named(self, sums: dict[str, float]) -> dict[str, float]:
        """Each named sum, summed over the group (one all-reduce, in float64)."""
        import torch.distributed as dist

        reduced = torch.tensor(list(sums.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(reduced)
        return dict(zip(sums, reduced.cpu().tolist(), strict=True))

    def _all_max(self, value: float) -> float:
        """The largest of every rank's `value`."""
        import torch.distributed as dist

        reduced = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
        return reduced.item()

    # --- weights out ------------------------------------------------------------------

    @contextmanager
    def _full_state(self, engine, on_every_rank: bool = False):
        """`engine`'s full state dict on rank 0 (or on every rank; None elsewhere), as
        views valid inside the block. Every rank must enter: under ZeRO-3 the parameters
        are gathered."""
        module = engine.module
        gathered = nullcontext()
        if self.config.zero_stage == 3:
            import deepspeed

            gathered = deepspeed.zero.GatheredParameters(
                list(module.parameters()), modifier_rank=None
            )
        with gathered:
            yield module.state_dict() if on_every_rank or self.rank == 0 else None

    def policy_state(self) -> dict | None:
        """The policy's full weights as contiguous CPU copies on rank 0 (None elsewhere);
        every rank must call it."""
        with self._full_state(self.policy) as state:
            return None if state is None else self._copy(state)

    @staticmethod
    def _copy(state: dict) -> dict:
        return {name: t.detach().to("cpu").contiguous().clone() for name, t in state.items()}

    def weights_to_object_store(self) -> list | None:
        """Rank 0: [a Ray object reference to the serialized weights]; others: None.
        Every rank must call it."""
        import ray

        from engines.weights import serialize_weights

        with self._full_state(self.policy) as state:
            return None if state is None else [ray.put(serialize_weights(state))]

    def weight_layout(self) -> list[weight_broadcast.Bucket]:
        """The buckets the `distributed` transport sends (all ranks must call it)."""
        state = self.policy_state()
        if state is not None:
            self.weight_buckets = weight_broadcast.plan_buckets(
                weight_broadcast.layout_of(state), self.config.bucket_mb * 2**20
            )
        return self.weight_buckets

    def host_weight_group(self, world_size: int) -> tuple[str, int]:
        """Rank 0: start a weight group's rendezvous, on a fresh port; its address."""
        listener = weight_broadcast.listen(self._host())
        host, port = listener.getsockname()[:2]
        self.weight_store = weight_broadcast.rendezvous_store(host, port, world_size, listener)
        return host, port

    def open_weight_group(self, host: str, port: int, world_size: int) -> None:
        """Rank 0 joins the weight group as its rank 0, leaving the one it was in (others
        do nothing)."""
        if self.rank == 0:
            weight_broadcast.close_group(self.weight_group)
            self.weight_group = weight_broadcast.open_group(
                host, port, 0, world_size, self.config.device, self.weight_store
            )

    def broadcast_weights(self) -> list | None:
        """Send the policy's weights to the weight group, then put a copy into the object
        store, for engines that restart before the next sync to catch up from (the put
        overlaps the engines' loading). Rank 0: [the copy's reference], owned by this
        rank, which lives for the run; others: None. Every rank must call it."""
        import ray

        from engines.weights import serialize_weights

        with self._full_state(self.policy) as state:
            if state is None:
                return None
            weight_broadcast.send(self.weight_group, state, self.weight_buckets, str(self.device))
            return [ray.put(serialize_weights(state))]

    def export_policy(self, directory: str) -> None:
        """Rank 0 writes the policy in Hugging Face format (with the tokenizer) to
        `directory`, atomically: a temporary folder renamed at the end."""
        import shutil

        from transformers import AutoTokenizer

        state = self.policy_state()
        if state is None:
            return
        final = Path(directory)
        temporary = final.with_name(f".{final.name}.tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        self.policy.module.save_pretrained(temporary, state_dict=state)
        AutoTokenizer.from_pretrained(self.model_config.location()).save_pretrained(temporary)
        if final.exists():
            shutil.rmtree(final)
        os.rename(temporary, final)

    # --- checkpoints -----------------------------------------------------------------

    def save_checkpoint(self, directory: str) -> None:
        """Write this rank's share of policy, value, optimizers, schedulers and RNG states."""
        self.policy.save_checkpoint(
            directory,
            tag="policy",
            save_latest=False,
            client_state={"updates_done": self.updates_done},
        )
        self.value.save_checkpoint(directory, tag="value", save_latest=False)
        rng = {"python": random.getstate(), "torch": torch.get_rng_state()}
        if self.config.device != "cpu":
            rng["cuda"] = torch.cuda.get_rng_state()
        torch.save(rng, Path(directory) / f"rng-rank{self.rank}.pt")

    def load_checkpoint(self, directory: str) -> None:
        """Restore everything `save_checkpoint` wrote."""
        _, client = self.policy.load_checkpoint(directory, tag="policy")
        self.value.load_checkpoint(directory, tag="value")
        if client is None:
            raise RuntimeError(f"{directory} holds no policy checkpoint")
        self.updates_done = client["updates_done"]
        rng = torch.load(Path(directory) / f"rng-rank{self.rank}.pt", weights_only=False)
        random.setstate(rng["python"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"])

    def parameters(self) -> dict:
        """This rank's view of the full policy and value parameters, as CPU copies (all
        ranks must call it): for checks and tests."""
        copies = {}
        for name, engine in (("policy", self.policy), ("value", self.value)):
            with self._full_state(engine, on_every_rank=True) as state:
                copies[name] = self._copy(state)
        return copies
