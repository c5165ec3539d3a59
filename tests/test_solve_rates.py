"""Estimators against numbers worked out by hand, and against brute-force enumeration."""

import itertools
import math

import pytest

from problems.solve_rates import (
    bootstrap_interval,
    mean_by_group,
    mean_solved,
    n_at_k,
    pass_at_k,
)


def test_pass_at_k_by_hand():
    # 5 samples, 2 correct, draw 2: P(no correct) = C(3,2)/C(5,2) = 3/10.
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7, rel=1e-9)
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4, rel=1e-9)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(4, 2, 3) == 1.0  # any 3 of 4 include one of the 2 correct


def test_n_at_k_by_hand():
    # 4 samples: 2 pass public, 1 of them correct. 1@2: draw 2 of 4 (6 ways).
    # Both public-passers drawn (1 way): submit 1 at random, correct with 1/2.
    # One public-passer drawn (2 * 2 = 4 ways): it is the correct one in 2 of them.
    # No public-passer (1 way): nothing submitted. Total: (0.5 + 2) / 6 = 5/12.
    assert n_at_k(4, public=2, correct=1, n=1, k=2) == pytest.approx(5 / 12, rel=1e-9)
    # 2@2 submits every public-passer drawn: solved iff the correct one is drawn: 3/6.
    assert n_at_k(4, public=2, correct=1, n=2, k=2) == pytest.approx(0.5, rel=1e-9)
    assert n_at_k(4, public=2, correct=0, n=2, k=4) == 0.0


def _brute_force_n_at_k(labels, n, k):
    """Enumerate every draw of k samples and every choice of submissions."""
    total = 0.0
    draws = list(itertools.combinations(range(len(labels)), k))
    for draw in draws:
        passing = [i for i in draw if labels[i] != "fail"]
        m = min(n, len(passing))
        choices = list(itertools.combinations(passing, m)) if m else [()]
        solved = sum(any(labels[i] == "correct" for i in c) for c in choices) / len(choices)
        total += solved
    return total / len(draws)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_n_at_k_matches_brute_force(n, k):
    labels = ["correct", "correct", "public_only", "public_only", "public_only", "fail", "fail"]
    got = n_at_k(len(labels), public=5, correct=2, n=n, k=k)
    assert got == pytest.approx(_brute_force_n_at_k(labels, n, k), rel=1e-9)


def test_n_at_k_with_unlimited_submissions_is_pass_at_k():
    for k in range(1, 8):
        assert n_at_k(7, public=4, correct=2, n=k, k=k) == pytest.approx(pass_at_k(7, 2, k))


def test_mean_solved_and_bootstrap():
    assert mean_solved([True, False, False, True]) == 0.5
    scores = [0.0] * 50 + [1.0] * 50
    low, high = bootstrap_interval(scores, samples=2000, seed=1)
    # The standard error of a mean of 100 fair coins is 0.05: the interval is about
    # 0.5 +- 1.96 * 0.05.
    assert 0.38 < low < 0.42 and 0.58 < high < 0.62
    assert bootstrap_interval([0.3] * 10) == pytest.approx((0.3, 0.3))


def test_mean_by_group_by_hand():
    groups = ["b", "a", "b", "b", "a"]
    scores = [1.0, 0.5, 0.0, 0.5, 0.0]
    assert mean_by_group(groups, scores) == {"a": (0.25, 2), "b": (0.5, 3)}
    assert list(mean_by_group(groups, scores)) == ["a", "b"]
    assert mean_by_group([], []) == {}


@pytest.mark.parametrize(
    "call",
    [
        lambda: pass_at_k(3, 4, 1),
        lambda: pass_at_k(3, 1, 4),
        lambda: n_at_k(5, public=2, correct=3, n=1, k=1),
        lambda: n_at_k(5, public=2, correct=1, n=0, k=1),
        lambda: mean_solved([]),
        lambda: bootstrap_interval([]),
        lambda: mean_by_group(["a"], [1.0, 0.0]),
    ],
)
def test_impossible_counts_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_math_comb_is_exact_for_large_counts():
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5, rel=1e-12)
    assert math.isfinite(n_at_k(1000, public=300, correct=20, n=10, k=100))
