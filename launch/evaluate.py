"""`python -m launch.evaluate model=... data=... [eval.limit=N] [eval.out=FILE.json]`

The paper's metrics, computed with the training rollout machinery (the same engines,
dialogs and sandbox):

- 1@3: rollouts of up to 3 turns at temperature 0.2, top-p 0.95; a rollout solves the
  problem if its final program passes all tests. Per problem, the mean over
  `eval.rollouts` rollouts; over problems, the mean, with a bootstrap 95% interval.
- 10@100 (when `eval.rollouts_10at100` > 0; the paper uses 33 rollouts of 3 turns,
  about 100 samples): rollouts at temperature 1.0; AlphaCode's n@k over final programs,
  those passing the public tests submitted; with it pass@k of the final programs.

The paper's inference-time analyses, on the 1@3 rollouts:

- `dialog.feedback=execution|random|none`: what a failed reply is answered with (its own
  execution feedback, the paper; another problem's, the paper's control; "Give it
  another try" only). Solve rate by turn: the share of rollouts whose program at turn t
  (their last, if they stopped before) passes all tests; the repair, what turns 2..3 add
  (turn 3 minus turn 1); the share of retries that repeat the previous program unchanged.
- `eval.random_control=true`: the same dialogs, with the same seeds, played again with
  random feedback; the repair gap is the repair with `dialog.feedback` minus the repair
  with random feedback: what the feedback's content is worth. Turn 1 is the same sample
  in both (same seed, same prompt), so the gap compares like with like.

Prints a table (on toy problems also 1@3 by family), shows a progress bar, and writes
`eval.out` as JSON: `{"metrics": {...}, "feedback": {mode: {"solve_rate_turn_t",
"repair", "retries", "retries_repeated"}}, "repair_gap", "1@3_by_family": {family:
{"1@3", "problems"}}, "problems": [{"name", "samples": [{"turns": [{"valid_code",
"public_passed", "repeated"}], "passed", "overflow"}], "random_feedback_samples"}]}`,
where `samples` are the 1@3 rollouts, so that 1@3 (and `1@3_overflow`, the share of
them cut short because the next reply would not fit in `engine.max_model_len`) can be
recomputed from them; `repair_gap` and `random_feedback_samples` come with
`eval.random_control`; `1@3_by_family` is empty but on toy problems.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from actors.dialog import DialogConfig, check_feedback
from actors.seeds import EpisodeSeeds
from engines.generation import EngineConfig, ModelConfig, SamplingConfig
from engines.rollout import Rollout
from launch.config import ConfigError, compose_config, run_entry_point
from launch.evaluation import (
    EVAL_SAMPLING,
    WIDE_SAMPLING,
    one_at_three,
    play_repeated,
    repair,
    repeated_retries,
    solve_rates_by_turn,
    stopping_verdicts,
)
from problems.config import DataConfig
from problems.solve_rates import bootstrap_interval, mean_by_group, n_at_k, pass_at_k
from problems.sources import load_problems
from problems.toy import family_of
from sandbox import Sandbox, SandboxConfig

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
    random_control: bool = False
    """Also play the 1@3 dialogs with random feedback (another problem's execution
    feedback, the same seeds) and report the repair gap against it."""


@dataclass
class EvalDialogConfig:
    feedback: str = "execution"
    """What a failed reply is answered with: `execution` (its execution feedback, the
    paper), `random` (another problem's, the paper's control) or `none` ("Give it another
    try" only, no early stop)."""

    def __post_init__(self) -> None:
        check_feedback(self.feedback)


@dataclass
class EvaluateConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    sandbox: SandboxConfig = field(default_factory=lambda: SandboxConfig(workers=2))
    eval: EvalConfig = field(default_factory=EvalConfig)
    dialog: EvalDialogConfig = field(default_factory=EvalDialogConfig)


def _sample_record(rollout: Rollout) -> dict:
    turns = rollout.turns
    return {
        "turns": [
            {
                "valid_code": t.code is not None,
                "public_passed": t.tests_passed,
                "repeated": index > 0 and t.code is not None and t.code == turns[index - 1].code,
            }
            for index, t in enumerate(turns)
        ],
        "passed": rollout.passed,
        "overflow": rollout.overflow,
    }


def turn_verdicts(
    per_problem: list[list[Rollout]], problems: list, dialog: DialogConfig, sandbox: SandboxConfig
) -> list[list[bool]]:
    """Per rollout, whether each turn's program passes all tests. A dialog that stops
    once the feedback tests pass failed them on every turn but its last; without
    feedback (`none`, no early stop) each earlier program is judged here."""
    rollouts = [(p, r) for p, played in zip(problems, per_problem, strict=True) for r in played]
    verdicts = [stopping_verdicts(r.passed, len(r.turns)) for _, r in rollouts]
    if dialog.feedback != "none":
        return verdicts
    earlier = [
        (index, turn, problem.job(t.code, problem.all_tests, stop_on_first_failure=True))
        for index, (problem, rollout) in enumerate(rollouts)
        for turn, t in enumerate(rollout.turns[:-1])
        if t.code is not None
    ]
    with Sandbox(sandbox) as judge:
        judgements = judge.run_many([job for _, _, job in earlier])
    for (index, turn, _), judgement in zip(earlier, judgements, strict=True):
        verdicts[index][turn] = judgement.passed
    return verdicts


def feedback_analysis(
    per_problem: list[list[Rollout]], problems: list, dialog: DialogConfig, sandbox: SandboxConfig
) -> dict:
    """Solve rate by turn, the repair (last turn minus first) and the retries that repeat
    the previous program, of the 1@3 rollouts played with `dialog`."""
    verdicts = turn_verdicts(per_problem, problems, dialog, sandbox)
    rates = solve_rates_by_turn(verdicts, dialog.max_turns)
    repeated, retries = repeated_retries([r for played in per_problem for r in played])
    return rates | {
        "repair": repair(rates, dialog.max_turns),
        "retries": retries,
        "retries_repeated": repeated / retries if retries else 0.0,
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
) -> tuple[dict, list[list[Rollout]], list[list[Rollout]] | None]:
    """1@3 (and 10@100 if asked), with their intervals; the 1@3 rollouts per problem;
    and, with `eval.random_control`, the same dialogs played with random feedback."""
    from tqdm import tqdm

    control = config.eval.rollouts if config.eval.random_control else 0
    total = len(problems) * (config.eval.rollouts + control + config.eval.rollouts_10at100)
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
        randomized = None
        if control:
            randomized = play_repeated(
                pool,
                problems,
                control,
                replace(dialog, feedback="random"),
                EVAL_SAMPLING,
                seeds,
                progress.update,
            )
    return metrics, per_problem, randomized


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
        feedback=config.dialog.feedback,
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
        metrics, per_problem, randomized = _metrics(config, pool, dialog, problems)
    finally:
        pool.shutdown()
    feedback = {dialog.feedback: feedback_analysis(per_problem, problems, dialog, config.sandbox)}
    extra: dict = {}
    if randomized is not None:
        control = replace(dialog, feedback="random")
        feedback["random"] = feedback_analysis(randomized, problems, control, config.sandbox)
        extra["repair_gap"] = feedback[dialog.feedback]["repair"] - feedback["random"]["repair"]
    scores = one_at_three(per_problem)[1]
    by_family = {}
    if data.source == "toy":
        families = [family_of(problem.name) for problem in problems]
        by_family = {
            family: {"1@3": score, "problems": count}
            for family, (score, count) in mean_by_group(families, scores).items()
        }
    records = [
        {"name": p.name, "samples": [_sample_record(r) for r in rollouts]}
        for p, rollouts in zip(problems, per_problem, strict=True)
    ]
    if randomized is not None:
        for record, rollouts in zip(records, randomized, strict=True):
            record["random_feedback_samples"] = [_sample_record(r) for r in rollouts]
    return {
        "metrics": metrics,
        "feedback": feedback,
        **extra,
        "1@3_by_family": by_family,
        "config": {
            "model": config.model.path,
            "data": data.source,
            "split": data.split,
            "problems": len(problems),
            "rollouts": config.eval.rollouts,
            "feedback": dialog.feedback,
            "max_turns": dialog.max_turns,
        },
        "problems": records,
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
    for mode, analysis in result["feedback"].items():
        by_turn = ", ".join(
            f"{t} {100 * analysis[f'solve_rate_turn_{t}']:.1f}%"
            for t in range(1, setup["max_turns"] + 1)
        )
        lines.append(
            f"  {mode + ' feedback':<18} solved by turn {by_turn}; repair "
            f"{100 * analysis['repair']:+.1f}; retries repeating the previous program "
            f"{100 * analysis['retries_repeated']:.1f}% (of {analysis['retries']})"
        )
    if "repair_gap" in result:
        lines.append(
            f"  repair gap ({setup['feedback']} - random feedback): "
            f"{100 * result['repair_gap']:+.1f} points"
        )
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
