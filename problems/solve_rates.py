"""Solve-rate estimators: pass@k, AlphaCode's n@k with public-test filtering, bootstrap CIs.

Pure functions of per-problem counts. Notation, for one problem:
  N  samples drawn (for RLEF: rollouts, each ending in one final program)
  P  of them whose program passes the public tests (the filter before submitting)
  C  of them whose program passes all tests (C <= P: a correct program passes public)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): the chance that k of the n samples, drawn without
    replacement, include one of the c correct ones. 1 - C(n-c, k) / C(n, k)."""
    _check(n, k)
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    return 1.0 - comb(n - c, k) / comb(n, k)


def n_at_k(n_samples: int, public: int, correct: int, n: int, k: int) -> float:
    """AlphaCode's n@k, unbiased: draw k of the samples, keep those that pass the public
    tests, submit n of them (all, if fewer); solved if a submission is correct.

    With j the number of public-passing samples among the k drawn (hypergeometric), the
    m = min(n, j) submissions are a uniform random subset of the `public` passing ones, so
    P(none correct | j) = C(public - correct, m) / C(public, m). Then
    n@k = sum_j P(j) * (1 - C(public - correct, m) / C(public, m)).
    """
    _check(n_samples, k)
    if not 0 <= correct <= public <= n_samples:
        raise ValueError(
            f"need 0 <= correct <= public <= samples, got {correct}, {public}, {n_samples}"
        )
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    total = comb(n_samples, k)
    solved = 0.0
    for j in range(1, min(k, public) + 1):
        drawn = comb(public, j) * comb(n_samples - public, k - j) / total
        m = min(n, j)
        solved += drawn * (1.0 - comb(public - correct, m) / comb(public, m))
    return solved


def mean_solved(outcomes: Sequence[bool]) -> float:
    """1@3 for one problem: the share of its rollouts (up to 3 turns each) whose final
    program passes all tests; each rollout submits exactly one program."""
    if not outcomes:
        raise ValueError("a problem needs at least one rollout")
    return sum(outcomes) / len(outcomes)


def mean_by_group(
    groups: Sequence[str], per_problem: Sequence[float]
) -> dict[str, tuple[float, int]]:
    """Per group (e.g. a toy family), the mean of its problems' scores and how many
    problems it has; groups in sorted order. `groups[i]` is problem i's group."""
    if len(groups) != len(per_problem):
        raise ValueError(f"{len(groups)} groups for {len(per_problem)} problems")
    members: dict[str, list[float]] = {}
    for group, score in zip(groups, per_problem, strict=True):
        members.setdefault(group, []).append(score)
    return {group: (sum(xs) / len(xs), len(xs)) for group, xs in sorted(members.items())}


def bootstrap_interval(
    per_problem: Sequence[float],
    samples: int = 1000,
    seed: int = 0,
    statistic: Callable[[Sequence[float]], float] = lambda xs: sum(xs) / len(xs),
) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of `statistic` over problems resampled with
    replacement (`samples` times): a 95% confidence interval for the benchmark score."""
    if not per_problem:
        raise ValueError("no problems to bootstrap")
    rng = random.Random(seed)
    values = sorted(
        statistic([per_problem[rng.randrange(len(per_problem))] for _ in per_problem])
        for _ in range(samples)
    )
    return values[int(0.025 * (samples - 1))], values[int(0.975 * (samples - 1))]


def _check(n: int, k: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= number of samples, got k={k}, samples={n}")
