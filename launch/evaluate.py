"""`python -m launch.evaluate model=... data=... [eval.limit=N] [eval.out=FILE.json]`

The paper's metrics, computed with the training rollout machinery (the same engines,
dialogs and sandbox):

- 1@3: rollouts of up to 3 turns at temperature 0.2, top-p 0.95; a rollout solves the
  problem if its final program passes all tests. Per problem, the mean over
  `eval.rollouts` rollouts; over problems, the mean, with a bootstrap 95% interval.
- 10@100 (when `eval.rollouts_10at100` > 0; the paper uses 33 rollouts of 3 turns,
  about 100 samples): rollouts at temperature 1.0; AlphaCode's n@k over final programs,
  those passing the public tests submitted; with it pass@k of the final programs.

Prints a table (on toy problems also 1@3 by family), shows a progress bar, and writes
`eval.out` as JSON: `{"metrics": {...}, "1@3_by_family": {family: {"1@3", "problems"}},
"problems": [{"name", "samples": [{"turns": [{"valid_code", "public_passed"}],
"passed", "overflow"}]}]}`, where `samples` are the 1@3 rollouts, so that 1@3 (and
`1@3_overflow`, the share of them cut short because the next reply would not fit in
`engine.max_model_len`) can be recomputed from them; `1@3_by_family` is empty but on toy
problems.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from actors.dialog import DialogConfig
from actors.seeds import EpisodeSeeds
from engines.generation import EngineConfig, ModelConfig, SamplingConfig
from engines.rollout import Rollout
from launch.config import ConfigError, compose_config, run_entry_point
from launch.evaluation import EVAL_SAMPLING, WIDE_SAMPLING, one_at_three, play_repeated
from problems.config import DataConfig
from problems.solve_rates import bootstrap_interval, mean_by_group, n_at_k, pass_at_k
from problems.sources import load_problems
from problems.toy import family_of
from sandbox import SandboxConfig

BATCH_EPISODES = 64
"""Episodes played together: one engine call per turn for all of them."""


@dataclass
class EvalConfig:
    limit: int | None = None
    """Evaluate at most this many problems (None: the whole split)."""
    out: str | None = None
    """Write the metrics and every sample here as JSON."""
    rollouts: int = 5
    """1@3: rollouts per problem (temperature 0.2, top-p 0.95)."""
    rollouts_10at100: int = 0
    """10@100: rollouts per problem at temperature 1.0 (the paper: 33); 0 skips it."""
    max_turns: int = 3
    max_new_tokens: int = 512
    """Longest reply of one turn."""
    bootstrap: int = 1000
    """Resamplings of the problems for the 95% intervals."""
    seed: int = 0


@dataclass
class EvaluateConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    sandbox: SandboxConfig = field(default_factory=lambda: SandboxConfig(workers=2))
    eval: EvalConfig = field(default_factory=EvalConfig)


def _sample_record(rollout: Rollout) -> dict:
    return {
        "turns": [
            {"valid_code": t.code is not None, "public_passed": t.tests_passed}
            for t in rollout.turns
        ],
        "passed": rollout.passed,
        "overflow": rollout.overflow,
    }


def check_model(model: ModelConfig) -> None:
    """Fail early, with what to do, when a model path is neither a folder nor a hub id."""
    path = model.path
    looks_local = path.startswith(("/", ".", "~")) or path.count("/") != 1
    if looks_local and not Path(model.location()).exists():
        raise ConfigError(
            f"model.path {path!r} does not exist; build the tiny model with "
            "`python -m launch.prepare_tiny`, or give a local model folder or a hub id "
            "(e.g. model=llama3.1-8b-instruct)"
        )


def _metrics(
    config: EvaluateConfig, pool, dialog: DialogConfig, problems: list
) -> tuple[dict, list[list[Rollout]]]:
    """1@3 (and 10@100 if asked), with their intervals; and the 1@3 rollouts per problem."""
    from tqdm import tqdm

    total = len(problems) * (config.eval.rollouts + config.eval.rollouts_10at100)
    metrics: dict[str, float | list[float]] = {}
    with tqdm(
        total=total, desc="evaluating", unit="rollout", file=sys.stderr, disable=None
    ) as progress:
        seeds = EpisodeSeeds(config.eval.seed, "eval", iteration=0)
        per_problem = play_repeated(
            pool, problems, config.eval.rollouts, dialog, EVAL_SAMPLING, seeds, progress.update
        )
        metrics["1@3"], scores = one_at_three(per_problem)
        played = [r for rollouts in per_problem for r in rollouts]
        # Dialogs cut short: the next reply would not fit in engine.max_model_len.
        metrics["1@3_overflow"] = sum(r.overflow for r in played) / len(played)
        metrics["1@3_ci95"] = list(
            bootstrap_interval(scores, config.eval.bootstrap, config.eval.seed)
        )
        if config.eval.rollouts_10at100 > 0:
            many = play_repeated(
                pool,
                problems,
                config.eval.rollouts_10at100,
                dialog,
                WIDE_SAMPLING,
                seeds.from_episode(len(problems) * config.eval.rollouts),
                progress.update,
            )
            k = config.eval.rollouts_10at100
            n_scores, pass_scores = [], []
            for rollouts in many:
                public = sum(r.turns[-1].tests_passed for r in rollouts if r.turns)
                correct = sum(r.passed for r in rollouts)
                n_scores.append(n_at_k(len(rollouts), public, correct, n=10, k=k))
                pass_scores.append(pass_at_k(len(rollouts), correct, k))
            samples = k * config.eval.max_turns
            # The paper's 10@100 is 33 rollouts of 3 turns: 99 samples, "about 100".
            name = "10@100" if samples == 99 else f"10@{samples}"
            metrics[name] = sum(n_scores) / len(n_scores)
            metrics[f"{name}_ci95"] = list(
                bootstrap_interval(n_scores, config.eval.bootstrap, config.eval.seed)
            )
            metrics[f"pass@{k}_rollouts"] = sum(pass_scores) / len(pass_scores)
    return metrics, per_problem


def evaluate(config: EvaluateConfig) -> dict:
    """Play the rollouts, compute the metrics; the JSON document `eval.out` receives."""
    from actors.inference import InferencePool

    check_model(config.model)
    data = config.data
    if config.eval.limit is not None:
        data.limit = config.eval.limit if data.limit is None else min(data.limit, config.eval.limit)
    problems = list(load_problems(data))
    dialog = DialogConfig(
        max_turns=config.eval.max_turns,
        sampling=SamplingConfig(max_new_tokens=config.eval.max_new_tokens),
        max_model_len=config.engine.max_model_len,
    )
    pool = InferencePool(
        config.model,
        config.engine,
        dialog,
        config.sandbox,
        num_actors=1,
        chunk_size=BATCH_EPISODES,
        in_process=True,
    )
    try:
        metrics, per_problem = _metrics(config, pool, dialog, problems)
    finally:
        pool.shutdown()
    scores = one_at_three(per_problem)[1]
    by_family = {}
    if data.source == "toy":
        families = [family_of(problem.name) for problem in problems]
        by_family = {
            family: {"1@3": score, "problems": count}
            for family, (score, count) in mean_by_group(families, scores).items()
        }
    return {
        "metrics": metrics,
        "1@3_by_family": by_family,
        "config": {
            "model": config.model.path,
            "data": data.source,
            "split": data.split,
            "problems": len(problems),
            "rollouts": config.eval.rollouts,
        },
        "problems": [
            {"name": p.name, "samples": [_sample_record(r) for r in rollouts]}
            for p, rollouts in zip(problems, per_problem, strict=True)
        ],
    }


def table(result: dict) -> str:
    setup = result["config"]
    lines = [
        f"evaluate: {setup['model']} on {setup['data']} {setup['split']}, "
        f"{setup['problems']} problems, {setup['rollouts']} rollouts each for 1@3"
    ]
    metrics = result["metrics"]
    for name, value in metrics.items():
        if name.endswith("_ci95"):
            continue
        interval = metrics.get(f"{name}_ci95")
        ci = f"  (95% CI {100 * interval[0]:.1f}-{100 * interval[1]:.1f})" if interval else ""
        lines.append(f"  {name:<16} {100 * value:6.1f}%{ci}")
    by_family = result.get("1@3_by_family")
    if by_family:
        lines.append("  1@3 by family:")
        for family, entry in by_family.items():
            lines.append(
                f"    {family:<18} {100 * entry['1@3']:6.1f}%  ({entry['problems']} problems)"
            )
    return "\n".join(lines)


def run(overrides: list[str]) -> str:
    config = compose_config("evaluate", overrides, EvaluateConfig)
    result = evaluate(config)
    if config.eval.out:
        Path(config.eval.out).write_text(json.dumps(result, indent=1) + "\n")
    return table(result) + (f"\n  written to {config.eval.out}" if config.eval.out else "")


def main(argv: list[str] | None = None) -> int:
    return run_entry_point("evaluate", lambda: run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
