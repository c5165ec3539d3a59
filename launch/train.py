"""`python -m launch.train [overrides]`: RLEF training, the project's main job.

Each iteration the inference actors play `trainer.rollouts_per_iteration` episodes into
the replay queue; the learner group takes them, updates, and the new weights go to every
engine. `trainer.schedule=sync` is the paper's (generate with version v, train,
broadcast); `async` plays the next iteration's episodes while the learner trains, at
most `trainer.max_staleness` versions behind. 1@3 on the validation split is evaluated
before training, every `eval.every` iterations and at the end. The run folder gets
`metrics.jsonl`, TensorBoard scalars, `rollouts/*.parquet`, `checkpoints/`, the final
policy (`policy/`, Hugging Face format) and `report.html`.

    python -m launch.train                                   # tiny model, toy contests, local
    python -m launch.train trainer.iterations=5 learner.lr=1e-4
    python -m launch.train +experiment=paper_8b              # the paper's 8B run (or paper_70b)
    python -m launch.train --multirun +experiment=single_turn,random_feedback
"""

from __future__ import annotations

import operator
import os
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import hydra
import psutil
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from actors.dialog import DialogConfig
from actors.metrics import TrainerMetrics, restarts_by_kind
from actors.seeds import EpisodeSeeds
from engines.rollout import RolloutSummary, StoredRollout
from launch.chaos import ChaosMonkey
from launch.config import CONF_DIR, ConfigError, RunStopped, run_entry_point
from launch.evaluation import (
    EVAL_SAMPLING,
    by_problem,
    one_at_three,
    repair,
    repeated_episodes,
    turn_solve_rates,
)
from launch.node_bytes import CrossNodeBytes
from launch.placement import actor_nodes, placement_line, write_placement
from launch.plan import format_plan, make_plan
from launch.run_files import (
    RolloutStore,
    RunFiles,
    RunLog,
    read_eval_before,
    read_metrics,
    rollouts_path,
    write_eval_before,
)
from launch.train_config import (
    ROLES,
    TrainConfig,
    cpu_reservations,
    cpus_reserved,
    role_request,
    role_resource,
    with_cpus_scaled,
)
from problems import Problem
from problems.sources import load_problems
from problems.stream import ProblemStream


class StopRequest:
    """SIGTERM (a preemption, `ray job stop`) or SIGINT asks the loop to stop after the
    current iteration, with a checkpoint; the handlers are restored afterwards."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous = {
            signum: signal.signal(signum, self._handle)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }

    def _handle(self, signum, frame) -> None:
        if self.requested:  # asked twice: stop now
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


STORE_NAME = "rollout-store"
"""The actor that owns the run's rollouts in the object store and writes their Parquet."""
ConfigStore.instance().store(name="train_schema", node=TrainConfig)
# `${mul:a,b}` in conf/: a product, e.g. the run's update count, where a learning-rate
# schedule ends with the run.
OmegaConf.register_new_resolver("mul", operator.mul, replace=True)


def check_config(config: TrainConfig) -> None:
    """Raise `ConfigError` (naming the key) for settings that cannot work, before any
    actor starts: those of several groups, and those only the model's files can tell."""
    from launch.evaluate import check_model

    config.check()
    check_model(config.model)
    check_dialog_length(config)


def check_dialog_length(config: TrainConfig) -> None:
    """Raise `ConfigError` where a dialog of `dialog.max_model_len` tokens cannot be
    played or trained: longer than the model's context, than the engine takes, than its
    CPU KV cache holds, than a learner micro-batch; or a reply budget that fills it."""
    from launch.plan import dialog_budget, model_architecture

    dialog, engine = config.dialog, config.engine
    found = model_architecture(config.model)
    budget = dialog_budget(config, None if found is None else found[0])
    length = f"dialog.max_model_len={dialog.max_model_len}"
    if dialog.sampling.max_new_tokens < 1:
        raise ConfigError(
            f"dialog.sampling.max_new_tokens must be >= 1, got {dialog.sampling.max_new_tokens}"
        )
    if budget.longest_prompt < 1:
        raise ConfigError(
            f"dialog.sampling.max_new_tokens={dialog.sampling.max_new_tokens} leaves no room "
            f"for a prompt in {length}"
        )
    if budget.model_context is not None and dialog.max_model_len > budget.model_context:
        raise ConfigError(
            f"{length} is longer than the model's context ({budget.model_context} tokens, "
            "max_position_embeddings of its config)"
        )
    if engine.max_model_len < dialog.max_model_len:
        raise ConfigError(
            f"engine.max_model_len={engine.max_model_len} is shorter than {length}: the "
            "engine would refuse a dialog's last turns (leave engine.max_model_len unset: it "
            "follows dialog.max_model_len)"
        )
    if config.learner.micro_batch_tokens < dialog.max_model_len:
        raise ConfigError(
            f"learner.micro_batch_tokens={config.learner.micro_batch_tokens} cannot hold one "
            f"whole dialog of {length}"
        )
    kv_bytes = budget.kv_bytes_per_dialog
    if engine.device == "cpu" and kv_bytes is not None and kv_bytes > engine.kv_cache_gib * 2**30:
        raise ConfigError(
            f"engine.kv_cache_gib={engine.kv_cache_gib} cannot hold one dialog of {length} "
            f"({kv_bytes / 2**30:.2f} GiB of KV cache): raise engine.kv_cache_gib"
        )


class ProducerStopped(Exception):
    """Raised in the producer's thread to leave the iteration it is playing."""


class Producer:
    """Plays each iteration's episodes in a background thread, at most `ahead` iterations
    ahead of the learner (0: sync), and puts each chunk's stored rollouts into the replay
    queue as it finishes (kept in the object store by the actor named `owner`)."""

    def __init__(
        self, pool, queue, owner: str, stream: ProblemStream, count: int, seed: int, ahead: int
    ):
        self.pool, self.queue, self.owner, self.stream = pool, queue, owner, stream
        self.count, self.seed, self.ahead = count, seed, ahead
        self.learner_version = 0
        self.timings: dict[int, dict] = {}
        self.played: dict[int, list[StoredRollout]] = {}
        """Each iteration's stored rollouts, complete once its timings are in."""
        self.positions: dict[int, int] = {}
        """Data position after each iteration's problems (async runs ahead of the learner:
        a checkpoint of iteration i must resume at i's position, not the producer's)."""
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def again(self, stream: ProblemStream) -> Producer:
        """A new producer like this one, of `stream`, not started."""
        return Producer(
            self.pool, self.queue, self.owner, stream, self.count, self.seed, self.ahead
        )

    def start(self, first: int, last: int) -> None:
        self._thread = threading.Thread(target=self._run, args=(first, last), daemon=True)
        self._thread.start()

    def learner_at(self, version: int) -> None:
        with self._changed:
            self.learner_version = version
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify_all()

    def stop_and_drain(self) -> None:
        """Stop after the chunk being played, dropping what the queue holds (so that a
        `put` waiting for room goes on), and wait until the thread has ended."""
        import ray

        self.stop()
        while self._thread is not None and self._thread.is_alive():
            ray.get(self.queue.reset.remote(self.learner_version))
            self._thread.join(timeout=1.0)

    def check(self) -> None:
        """Raise if playing episodes failed."""
        if self.error is not None:
            raise RuntimeError(f"playing episodes failed: {self.error}") from self.error

    def wait_played(self, iteration: int) -> list[StoredRollout]:
        """The iteration's stored rollouts, in episode order, once all are played."""
        with self._changed:
            while iteration not in self.timings:
                self.check()
                self._changed.wait(timeout=1.0)
        return sorted(self.played.pop(iteration), key=lambda stored: stored.summary.episode)

    def _run(self, first: int, last: int) -> None:
        import ray

        try:
            for iteration in range(first, last + 1):
                # Iteration i is played with weights of version >= i - 1 - ahead.
                oldest = iteration - 1 - self.ahead
                with self._changed:
                    self._changed.wait_for(
                        lambda oldest=oldest: self._stop or self.learner_version >= oldest
                    )
                    if self._stop:
                        return
                problems = self.stream.take(self.count)
                self.positions[iteration] = self.stream.position
                played = self.played[iteration] = []

                def enqueue(chunk: list[StoredRollout], played=played) -> None:
                    if self._stop:
                        raise ProducerStopped
                    played.extend(chunk)
                    for version in sorted({stored.summary.weight_version for stored in chunk}):
                        items = [s for s in chunk if s.summary.weight_version == version]
                        ray.get(self.queue.put.remote(version, items))

                started = time.perf_counter()
                self.pool.play_to_store(
                    problems,
                    EpisodeSeeds(self.seed, "train", iteration),
                    iteration,
                    self.owner,
                    on_chunk=enqueue,
                )
                with self._changed:
                    self.timings[iteration] = {"time_generate_s": time.perf_counter() - started}
                    self._changed.notify_all()
        except ProducerStopped:  # what the engines still play for us is dropped
            return
        except BaseException as exc:  # reported by the learner loop, which waits on us
            self.error = exc
            with self._changed:
                self._changed.notify_all()


def iteration_metrics(
    iteration: int, summaries: list[RolloutSummary], train: dict, max_turns: int
) -> dict:
    """The iteration's line of `metrics.jsonl` (times are added by the loop)."""
    updates = train["updates"]
    generate_s = [s.generate_s for s in summaries]
    sandbox_s = [s.sandbox_s for s in summaries]
    busy = sum(generate_s) + sum(sandbox_s)
    return {
        "iteration": iteration,
        "weight_version": iteration,
        "rollouts": len(summaries),
        "reward_mean": train["reward_mean"],
        "solve_rate": sum(s.passed for s in summaries) / len(summaries),
        **turn_solve_rates(summaries, max_turns),
        "turns_mean": statistics.mean(s.turns for s in summaries),
        "overflow_rate": sum(s.overflow for s in summaries) / len(summaries),
        "rollouts_without_reply": sum(not s.turns for s in summaries),
        "valid_code_rate": sum(s.turns_with_code for s in summaries)
        / max(1, sum(s.turns for s in summaries)),
        "kl_ref": train["kl_ref"],
        "kl_ref_stderr": train["kl_ref_stderr"],
        "policy_loss": statistics.mean(u["policy_loss"] for u in updates),
        "value_loss": statistics.mean(u["value_loss"] for u in updates),
        "clip_fraction": statistics.mean(u["clip_fraction"] for u in updates),
        "approx_kl_behaviour": statistics.mean(u["approx_kl_behaviour"] for u in updates),
        # The first update's policy is the one that sampled (sync schedule): its log-probs
        # differ from the engine's by numerics only, unless the weights did not arrive.
        "log_ratio_max_first_update": updates[0]["log_ratio_max"],
        "log_ratio_max": max(u["log_ratio_max"] for u in updates),
        "entropy": statistics.mean(u["entropy"] for u in updates),
        "grad_norm": statistics.mean(u["grad_norm"] for u in updates),
        "lr": updates[-1]["lr"],
        "learner_tokens_per_s": statistics.mean(u["tokens_per_s"] for u in updates),
        "padding_fraction": train["padding_fraction"],
        "time_wait_rollouts_s": train["time_wait_rollouts_s"],
        "time_prepare_s": train["time_prepare_s"],
        "time_update_s": train["time_update_s"],
        "time_last_rollout_to_step_s": train["time_last_rollout_to_step_s"],
        "tokens_generated": sum(s.trained_tokens for s in summaries),
        "staleness_max": iteration - 1 - min(s.weight_version for s in summaries),
        "sandbox_share": sum(sandbox_s) / busy if busy else 0.0,
    }


def _load(data, tokenizer, dialog: DialogConfig, drop_unfit: bool, say) -> list[Problem]:
    """The split's problems; rows that cannot be parsed are skipped, counted and said.
    A problem whose first prompt leaves no room for a whole reply in
    `dialog.max_model_len` would play no turn: dropped from training (`drop_unfit`),
    kept in an evaluation, where it counts as unsolved; `say` tells either way."""
    from problems.prompts import first_turn_lengths

    source = load_problems(data)
    problems = list(source)
    fits = [dialog.reply_fits(length) for length in first_turn_lengths(tokenizer, problems)]
    unfit = fits.count(False)
    if drop_unfit:
        problems = [problem for problem, fit in zip(problems, fits, strict=True) if fit]
    line = f"train: {data.source} {data.split}: {len(problems)} problems"
    skipped = sum(source.dropped.values())
    if skipped:
        reasons = Counter()
        for reason, count in source.dropped.items():
            reasons[reason.partition(":")[0]] += count  # `malformed: <field>` -> malformed
        listed = ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items()))
        line += f", {skipped} rows skipped ({listed})"
    if unfit:
        line += (
            f", {unfit} {'dropped' if drop_unfit else 'unsolvable'} (prompt too long: "
            f"no room for a {dialog.sampling.max_new_tokens}-token reply in "
            f"dialog.max_model_len={dialog.max_model_len})"
        )
    say(line)
    return problems


def training_problems(config: TrainConfig, tokenizer, say=lambda line: None) -> list[Problem]:
    """What a run of `config` trains on: the train split of `config.data`, less what
    `_load` drops; `ProblemStream(problems, config.trainer.seed)` deals them out."""
    return _load(replace(config.data, split="train"), tokenizer, config.dialog, True, say)


@dataclass
class _Loop:
    """What a run's iterations share: the producer of rollouts, the run folder's files,
    the watchers (chaos, live metrics, stop requests), and the 1@3 of each evaluation."""

    producer: Producer
    files: RunFiles
    chaos: ChaosMonkey
    live: TrainerMetrics
    stop: StopRequest
    evaluations: dict[int, float]
    node_bytes: CrossNodeBytes


class Trainer:
    """Starts the actors, runs the iterations, writes the run folder."""

    def __init__(self, config: TrainConfig) -> None:
        check_config(config)
        self.config = config
        self.run_dir = Path(config.run.dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.say = RunLog(self.run_dir)
        if config.run.resume:
            from learner import checkpoint

            if (
                checkpoint.latest(self.run_dir / "checkpoints") is None
                or read_eval_before(self.run_dir) is None
            ):
                raise ConfigError(
                    f"run.resume=true, but {self.run_dir} holds no complete checkpoint to resume"
                )
        from transformers import AutoTokenizer

        data, dialog = config.data, config.dialog
        tokenizer = AutoTokenizer.from_pretrained(config.model.location())
        self.train_problems = training_problems(config, tokenizer, self.say)
        split = replace(data, split=config.eval.split, limit=config.eval.problems)
        self.valid_problems = _load(split, tokenizer, dialog, False, self.say)

    def _start_actors(self) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from actors.inference import InferencePool
        from actors.pool import HangWatch
        from actors.replay_queue import ReplayQueueActor
        from actors.sandbox_pool import SandboxPool

        config = self.config
        if not ray.is_initialized():
            # A Ray job (launch/submit.sh) runs with RAY_ADDRESS set to its cluster: join it
            # as it is, since Ray refuses num_cpus for a cluster that is already running.
            joining = config.cluster.address is not None or "RAY_ADDRESS" in os.environ
            # A Ray of our own is one node: it takes every role there is.
            roles = {r: 1 for r in map(partial(role_resource, config.cluster), ROLES) if r}
            ray.init(
                address=config.cluster.address,
                num_cpus=None if joining else config.cluster.num_cpus,
                resources=None if joining else roles,
                include_dashboard=False,
                log_to_driver=False,
            )
        self.config = config = self._fit_to_cluster(config)
        self._say_missing_roles()
        actors, trainer = config.actors, config.trainer
        # Bookkeeping only: they take no CPU from the actors that work. The store owns the
        # rollouts the inference actors play, and lives for the run: both stay on the
        # driver's node, which the run cannot lose and go on.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.store = (
            ray.remote(RolloutStore)
            .options(name=STORE_NAME, num_cpus=0, scheduling_strategy=here)
            .remote()
        )
        self.queue = ReplayQueueActor.options(
            name="replay-queue", num_cpus=0, scheduling_strategy=here
        ).remote(trainer.queue_capacity, max(trainer.max_staleness, trainer.look_ahead))
        # Held for the run: Ray ends a (named) actor once no handle refers to it.
        self.sandboxes = None
        if actors.num_sandbox:
            self.sandboxes = SandboxPool.start(
                config.sandbox,
                actors.num_sandbox,
                name_prefix="sandbox",
                num_cpus_per_actor=actors.cpus_per_sandbox,
                resources=role_request(config.cluster, "sandbox"),
            )
        self.pool = InferencePool(
            config.model,
            config.engine,
            config.dialog,
            config.sandbox,
            num_actors=actors.num_inference,
            chunk_size=actors.chunk_size,
            actor_options=lambda index: {
                "name": f"inference-{index}",
                "num_cpus": actors.cpus_per_inference,
                "num_gpus": actors.gpus_per_inference,
                "resources": role_request(config.cluster, "inference"),
            },
            sandbox_actors=self.sandboxes.names if self.sandboxes else None,
            hang=HangWatch(actors.hang_factor, actors.hang_min_s, actors.hang_first_s),
        )
        self.group = self._learner_group()

    def _learner_group(self):
        """A new learner group of the run's config, its ranks on the learner nodes."""
        from learner.group import LearnerGroup

        config = self.config
        return LearnerGroup(config.learner, config.model, role_request(config.cluster, "learner"))

    def _say_missing_roles(self) -> None:
        """A line for each node role that no node of the cluster declares (yet: an
        autoscaler may add one); its actors wait for one."""
        import ray

        offered = ray.cluster_resources()
        for role in ROLES:
            resource = role_resource(self.config.cluster, role)
            if resource and resource not in offered:
                self.say(
                    f"train: no node of the Ray cluster declares {resource} "
                    f"(cluster.{role}_resource): the {role} actors wait for one; start "
                    f"such nodes with `ray start --resources='{{\"{resource}\": 1}}'`"
                )

    def _fit_to_cluster(self, config: TrainConfig) -> TrainConfig:
        """The config, its actors' CPU reservations fitted to the Ray cluster found: on
        `cluster=local` (a laptop's or a small head's defaults) scaled down to the CPUs
        the cluster has; elsewhere kept, with a line if the cluster lacks them now (an
        autoscaler may add nodes; the learner's placement gives up after a while)."""
        import ray

        offered = ray.cluster_resources().get("CPU", 0.0)
        needed = cpus_reserved(config)
        if needed <= offered:
            return config
        listed = ", ".join(
            f"{kind} {count} x {each:g}"
            for kind, (count, each) in cpu_reservations(config).items()
            if count
        )
        if config.cluster.name != "local":
            self.say(
                f"train: the Ray cluster has {offered:g} CPUs now and this run reserves "
                f"{needed:g} ({listed}): it waits for more nodes, or lower "
                "learner.cpus_per_rank, actors.cpus_per_inference, actors.cpus_per_sandbox"
            )
            return config
        self.say(
            f"train: the Ray cluster has {offered:g} CPUs and this run reserves {needed:g} "
            f"({listed}): cluster=local scales each reservation by {offered / needed:.2f}"
        )
        return with_cpus_scaled(config, offered / needed)

    def run(self) -> str:
        """Train; the closing summary."""
        from tqdm import tqdm

        from learner.group import LearnerRankDied

        config, trainer = self.config, self.config.trainer
        self._start_actors()
        files = RunFiles(self.run_dir)
        placed = actor_nodes(self._actor_names())
        write_placement(self.run_dir, placed)
        self.say(placement_line(placed))
        stream = ProblemStream(self.train_problems, trainer.seed)
        producer = Producer(
            self.pool,
            self.queue,
            STORE_NAME,
            stream,
            trainer.rollouts_per_iteration,
            trainer.seed,
            trainer.look_ahead,
        )
        if config.run.resume:
            first = self._resume(files, stream, producer)
            before, before_turns = read_eval_before(self.run_dir)
        else:
            first, (before, before_turns) = 1, self._evaluate(0, config.eval.random_control)
            write_eval_before(self.run_dir, before, before_turns)
        self.say(f"train: 1@3 on {config.eval.split} before training: {100 * before:.1f}%")
        evaluations = {0: before} | {
            m["iteration"]: m["eval_1at3"] for m in read_metrics(self.run_dir) if "eval_1at3" in m
        }
        producer.start(first, trainer.iterations)
        progress = tqdm(
            desc="train",
            unit="it",
            initial=first - 1,
            total=trainer.iterations,
        )
        last = {}
        loop = _Loop(
            producer,
            files,
            ChaosMonkey(config.chaos, self._actor_names, self.say),
            TrainerMetrics(),
            StopRequest(),
            evaluations,
            CrossNodeBytes(),
        )
        loop.node_bytes.moved()  # from here on
        iteration, relaunches = first, 0
        try:
            while iteration <= trainer.iterations:
                try:
                    last = self._iteration(iteration, loop)
                except LearnerRankDied as died:
                    if relaunches == config.run.max_restarts:
                        raise RunStopped(self._how_to_resume(died)) from died
                    relaunches += 1
                    iteration = self._relaunch_learner(died, relaunches, loop, stream)
                    progress.n = iteration - 1
                    progress.refresh()
                    continue
                progress.update()
                progress.set_postfix(
                    reward=f"{last['reward_mean']:.2f}", solve=f"{last['solve_rate']:.2f}"
                )
                self.say(summary_line(last))
                if loop.stop.requested:
                    self.say(
                        f"train: stopped by {loop.stop.requested} after iteration {iteration}, "
                        "checkpoint written; run.resume=true continues"
                    )
                    break
                iteration += 1
            self.group.export_policy(self.run_dir / "policy")
        finally:
            loop.chaos.stop()
            loop.stop.restore()
            loop.producer.stop()
            files.close()
            progress.close()
        report = ""
        if config.run.report:
            from launch.report import write_report

            report = str(write_report(self.run_dir))
        return closing_summary(self.run_dir, before, before_turns, evaluations, last, report)

    def _iteration(self, iteration: int, loop: _Loop) -> dict:
        """One iteration: take its rollouts, train, sync the engines, evaluate and
        checkpoint when due, write its files; its metrics."""
        import ray

        from learner.rank import NoReplyToTrain

        config, trainer = self.config, self.config.trainer
        started = time.perf_counter()
        loop.chaos.iteration_started(iteration)
        per_iteration = trainer.rollouts_per_iteration
        try:
            train = self.group.train_from(self.queue, iteration, per_iteration, loop.producer.check)
            stored = loop.producer.wait_played(iteration)
            writing = self.store.write.remote(
                str(rollouts_path(self.run_dir, "iter", iteration)), iteration, stored
            )
            sync = self.group.sync_weights(self.pool, iteration)
        except NoReplyToTrain as exc:
            raise RunStopped(
                f"iteration {iteration}: an update's share of the {per_iteration} rollouts "
                "has none with a reply; the prompts leave no room for a reply in "
                "dialog.max_model_len: raise it or lower dialog.sampling.max_new_tokens"
            ) from exc
        data_position = loop.producer.positions.pop(iteration)
        loop.producer.learner_at(iteration)
        ray.get(self.queue.set_learner_version.remote(iteration))
        loop.live.iteration(iteration, train["time_train_s"], sync["sync_s"])
        summaries = [entry.summary for entry in stored]
        metrics = iteration_metrics(iteration, summaries, train, config.dialog.max_turns)
        metrics.update(
            loop.producer.timings.pop(iteration),
            time_train_s=train["time_train_s"],
            time_sync_s=sync["sync_s"],
            time_engine_load_s=sync["engine_load_s"],
            tasks_redone=self.pool.stats.actor_failures,
            engines_hung=self.pool.stats.hung_actors,
            chaos_kills=len(loop.chaos.kills),
            **{
                f"restarts_{kind}": count
                for kind, count in restarts_by_kind(("inference", "sandbox")).items()
            },
        )
        moved = loop.node_bytes.moved()
        if moved is not None:
            metrics["cross_node_bytes"] = moved
        every = config.eval.every
        if iteration == trainer.iterations or (every and iteration % every == 0):
            control = config.eval.random_control and iteration == trainer.iterations
            metrics["eval_1at3"], turns = self._evaluate(iteration, control)
            metrics.update({f"eval_{k}": v for k, v in turns.items()})
            loop.evaluations[iteration] = metrics["eval_1at3"]
        checkpoint_now = iteration % config.run.checkpoint_every == 0
        if checkpoint_now or iteration == trainer.iterations or loop.stop.requested:
            self.group.save_checkpoint(
                str(self.run_dir / "checkpoints"),
                iteration,
                {"data_position": data_position},
                config.run.keep_checkpoints,
            )
        ray.get(writing)
        metrics["time_iteration_s"] = time.perf_counter() - started
        metrics["driver_rss_mib"] = psutil.Process().memory_info().rss / 2**20
        loop.files.write_iteration(metrics)
        return metrics

    def _resume(self, files: RunFiles, stream: ProblemStream, producer: Producer) -> int:
        """Restore the last complete checkpoint; the iteration to start at."""
        import ray

        from learner import checkpoint

        path = checkpoint.latest(self.run_dir / "checkpoints")
        state = self.group.load_checkpoint(path)
        done = state["iteration"]
        stream.position = state["data_position"]
        files.truncate_after(done)
        self.group.sync_weights(self.pool, done)
        producer.learner_at(done)
        ray.get(self.queue.set_learner_version.remote(done))
        self.say(f"train: resumed from {path} (iteration {done})")
        return done + 1

    def _relaunch_learner(
        self, died: Exception, relaunch: int, loop: _Loop, stream: ProblemStream
    ) -> int:
        """Replace the learner group that lost a rank: a new one from the last complete
        checkpoint (or the start), the engines re-synced, the run folder and the replay
        queue cut back to it, a new producer from its data position. The iteration to go
        on at."""
        import ray

        from learner import checkpoint

        config = self.config
        path = checkpoint.latest(self.run_dir / "checkpoints")
        self.say(
            f"train: {died}; relaunching the learner group from "
            f"{path or 'the start (no checkpoint yet)'} "
            f"(relaunch {relaunch} of run.max_restarts={config.run.max_restarts})"
        )
        loop.producer.stop_and_drain()
        self.group.shutdown()
        self.group = self._learner_group()
        done, stream.position = 0, 0
        if path is not None:
            state = self.group.load_checkpoint(path)
            done, stream.position = state["iteration"], state["data_position"]
        loop.files.truncate_after(done)
        for iteration in [i for i in loop.evaluations if i > done]:
            del loop.evaluations[iteration]
        ray.get(self.queue.reset.remote(done))
        self.group.sync_weights(self.pool, done)
        loop.producer = loop.producer.again(stream)
        loop.producer.learner_at(done)
        loop.producer.start(done + 1, config.trainer.iterations)
        return done + 1

    def _actor_names(self) -> list[str]:
        """Names of the run's working actors (those chaos may kill)."""
        actors, learner = self.config.actors, self.config.learner
        return (
            [f"inference-{i}" for i in range(actors.num_inference)]
            + [f"sandbox-{i}" for i in range(actors.num_sandbox)]
            + [f"learner-{i}" for i in range(learner.num_ranks)]
        )

    def _how_to_resume(self, died: Exception) -> str:
        """What to tell the user when the learner group is lost."""
        from learner import checkpoint

        path = checkpoint.latest(self.run_dir / "checkpoints")
        if path is None:
            return f"{died}; no checkpoint was written yet: start the run again"
        return (
            f"{died}; the last complete checkpoint is {path}: resume with "
            f"`python -m launch.train run.resume=true run.dir={self.run_dir}` (and the "
            "same overrides)"
        )

    def _evaluate(self, iteration: int, control: bool) -> tuple[float, dict]:
        """1@3 and solve rates by turn after `iteration` (0: before training), with execution
        feedback; with `control`, also the repair with it (`repair`), with random feedback
        (`repair_random`) and their difference (`repair_gap`), said in a line. The
        rollouts go to the run folder (`eval-`, and `eval_random-` for the control)."""
        config = self.config
        dialog = replace(config.dialog, feedback="execution", feedback_tests="public")
        solved, summaries = self._play_evaluation(iteration, dialog, "eval")
        turns = turn_solve_rates(summaries, dialog.max_turns)
        if control:
            randomized = replace(dialog, feedback="random")
            random_turns = turn_solve_rates(
                self._play_evaluation(iteration, randomized, "eval_random")[1], dialog.max_turns
            )
            turns["repair"] = repair(turns, dialog.max_turns)
            turns["repair_random"] = repair(random_turns, dialog.max_turns)
            turns["repair_gap"] = turns["repair"] - turns["repair_random"]
            self.say(
                f"train: repair after iteration {iteration} (turn {dialog.max_turns} minus "
                f"turn 1 on {config.eval.split}): execution feedback "
                f"{100 * turns['repair']:+.1f}, random feedback "
                f"{100 * turns['repair_random']:+.1f}, gap {100 * turns['repair_gap']:+.1f} points"
            )
        return solved, turns

    def _play_evaluation(
        self, iteration: int, dialog: DialogConfig, phase: str
    ) -> tuple[float, list[RolloutSummary]]:
        """The validation dialogs after `iteration`, played with `dialog` (the same seeds
        whatever the dialog) and written as `phase`'s rollouts; 1@3 and the summaries."""
        import ray

        config = self.config
        episodes, dialog = repeated_episodes(
            self.valid_problems, config.eval.rollouts, dialog, EVAL_SAMPLING
        )
        stored = self.pool.play_to_store(
            episodes,
            EpisodeSeeds(config.trainer.seed, "eval", iteration),
            iteration,
            STORE_NAME,
            dialog=dialog,
        )
        path = str(rollouts_path(self.run_dir, phase, iteration))
        ray.get(self.store.write.remote(path, iteration, stored))
        summaries = [entry.summary for entry in stored]
        return one_at_three(by_problem(summaries, config.eval.rollouts))[0], summaries


def summary_line(metrics: dict) -> str:
    """One line per iteration, for the terminal and the job's log."""
    line = (
        f"iter {metrics['iteration']:>4}  reward {metrics['reward_mean']:+.3f}  "
        f"solve {100 * metrics['solve_rate']:5.1f}%  turns {metrics['turns_mean']:.2f}  "
        f"overflow {100 * metrics['overflow_rate']:.1f}%  "
        f"kl_ref {metrics['kl_ref']:.4f}  generate {metrics['time_generate_s']:.1f}s  "
        f"train {metrics['time_train_s']:.1f}s  sync {metrics['time_sync_s']:.2f}s"
    )
    if "eval_1at3" in metrics:
        line += f"  eval 1@3 {100 * metrics['eval_1at3']:.1f}%"
    return line


def closing_summary(run_dir, before, before_turns, evaluations, last, report) -> str:
    after = evaluations[max(evaluations)]
    turns = sum(key.startswith("solve_rate_turn_") for key in before_turns)
    lines = [
        f"train: done, {last.get('iteration', 0)} iterations; run folder {run_dir}",
        f"  1@3 on validation: {100 * before:.1f}% before -> {100 * after:.1f}% after "
        f"({100 * (after - before):+.1f} points)",
        "  solved by turn (validation): "
        + ", ".join(
            f"turn {t}: {100 * before_turns[f'solve_rate_turn_{t}']:.1f}% -> "
            f"{100 * last.get(f'eval_solve_rate_turn_{t}', float('nan')):.1f}%"
            for t in range(1, turns + 1)
        ),
    ]
    if "repair_gap" in before_turns and "eval_repair_gap" in last:
        lines.append(
            "  repair gap (execution minus random feedback, turn "
            f"{turns} minus turn 1): {100 * before_turns['repair_gap']:+.1f} before -> "
            f"{100 * last['eval_repair_gap']:+.1f} points after"
        )
    if report:
        lines.append(f"  report: {report}")
    return "\n".join(lines)


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def main(cfg) -> None:
    logs: list[RunLog] = []  # the run folder's log, once the config names the folder

    def train() -> str:
        config: TrainConfig = OmegaConf.to_object(cfg)  # every config check runs here
        if config.dry_run:
            return format_plan(make_plan(config))
        Path(config.run.dir).mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, Path(config.run.dir) / "config.yaml", resolve=True)
        logs.append(RunLog(config.run.dir))
        return Trainer(config).run()

    status = run_entry_point("train", train, lambda line: [log.record(line) for log in logs])
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
