"""The evaluation that `launch.evaluate` and the training loop both run: dialogs played
on an `InferencePool` (Ray actors, or one engine in this process) with the paper's
evaluation sampling, and the solve rates read from them."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from actors.dialog import DialogConfig
from actors.inference import InferencePool
from actors.seeds import EpisodeSeeds
from engines.generation import SamplingConfig
from engines.rollout import Rollout, RolloutSummary
from problems import Problem
from problems.solve_rates import mean_solved

EVAL_SAMPLING = SamplingConfig(temperature=0.2, top_p=0.95)
"""1@3's sampling (the paper's); the reply length is the dialog's."""
WIDE_SAMPLING = SamplingConfig(temperature=1.0, top_p=1.0)
"""10@100's sampling (the paper's): many diverse samples."""
T = TypeVar("T")


def repeated_episodes(
    problems: Sequence[Problem], repeats: int, dialog: DialogConfig, sampling: SamplingConfig
) -> tuple[list[Problem], DialogConfig]:
    """Each problem `repeats` times in a row, and the dialog that plays them: `dialog`
    with `sampling` (its reply length the dialog's)."""
    sampling = replace(sampling, max_new_tokens=dialog.sampling.max_new_tokens)
    episodes = [problem for problem in problems for _ in range(repeats)]
    return episodes, replace(dialog, sampling=sampling)


def by_problem(played: list[T], repeats: int) -> list[list[T]]:
    """What `repeated_episodes`' episodes gave, per problem."""
    return [played[start : start + repeats] for start in range(0, len(played), repeats)]


def play_repeated(
    pool: InferencePool,
    problems: Sequence[Problem],
    repeats: int,
    dialog: DialogConfig,
    sampling: SamplingConfig,
    seeds: EpisodeSeeds,
    on_done: Callable[[int], None] | None = None,
) -> list[list[Rollout]]:
    """`repeats` rollouts of each problem, played by `dialog` with `sampling` (its reply
    length the dialog's), episode i sampled with `seeds`' episode i; per problem, its
    rollouts. `on_done(rollouts)` ticks as chunks finish."""
    episodes, dialog = repeated_episodes(problems, repeats, dialog, sampling)
    return by_problem(pool.play(episodes, seeds, on_done=on_done, dialog=dialog), repeats)


def one_at_three(per_problem: list[list[Rollout | RolloutSummary]]) -> tuple[float, list[float]]:
    """1@3 over problems, and each problem's own: the share of its rollouts whose final
    program passed all tests."""
    scores = [mean_solved([rollout.passed for rollout in rollouts]) for rollouts in per_problem]
    return statistics.mean(scores), scores


def solve_rates_by_turn(verdicts: Sequence[Sequence[bool]], max_turns: int) -> dict[str, float]:
    """Share of episodes solved by turn t, for t = 1..max_turns: whose program at turn t
    (its last one, if the episode ended before) passes all tests. `verdicts`: per
    episode, whether each turn's program passes all tests (an episode without a turn,
    overflowed at once, is never solved)."""
    rates = {}
    for turn in range(1, max_turns + 1):
        solved = sum(bool(v) and v[min(turn, len(v)) - 1] for v in verdicts)
        rates[f"solve_rate_turn_{turn}"] = solved / len(verdicts)
    return rates


def stopping_verdicts(passed: bool, turns: int) -> list[bool]:
    """Each turn's verdict in a dialog that stops once the feedback tests pass: every
    turn but the last failed them (so failed all tests); the last is the final verdict."""
    return [False] * (turns - 1) + [passed] if turns else []


def turn_solve_rates(summaries: list[RolloutSummary], max_turns: int) -> dict[str, float]:
    """`solve_rates_by_turn` of dialogs that stop once the feedback tests pass: an episode
    that passed with fewer turns counts as solved at every later turn."""
    return solve_rates_by_turn([stopping_verdicts(s.passed, s.turns) for s in summaries], max_turns)


def repair(rates: dict[str, float], max_turns: int) -> float:
    """What the turns after the first add: solved by the last turn minus by the first."""
    return rates[f"solve_rate_turn_{max_turns}"] - rates["solve_rate_turn_1"]


def repeated_retries(rollouts: Sequence[Rollout]) -> tuple[int, int]:
    """(retries whose program is the previous turn's unchanged, retries): a retry is any
    turn after the first; one without code repeats nothing."""
    pairs = [(a.code, b.code) for r in rollouts for a, b in itertools.pairwise(r.turns)]
    return sum(before is not None and before == after for before, after in pairs), len(pairs)
