"""Micro-batch planning: length buckets under a token budget, equal step counts per rank."""

from learner.packing import (
    bucket_by_length,
    padding_fraction,
    plan_micro_batches,
    split_across_ranks,
)


def test_buckets_hold_the_budget_padding_included():
    lengths = [10, 3, 9, 4, 2, 30]
    # Longest first; [0, 2] pads to 10 -> 20 tokens; 3 more of <= 4 pad to 4 -> 12.
    assert bucket_by_length(lengths, range(6), token_budget=20) == [[5], [0, 2], [3, 1, 4]]
    # A sequence over the budget still runs, alone.
    assert bucket_by_length(lengths, [5, 4], token_budget=8) == [[5], [4]]


def test_ranks_get_about_equal_tokens():
    lengths = [8, 7, 6, 5, 4, 3, 2, 1]
    shares = split_across_ranks(lengths, range(8), ranks=2)
    assert sorted(i for share in shares for i in share) == list(range(8))
    loads = [sum(lengths[i] for i in share) for share in shares]
    assert loads == [18, 18]


def test_every_rank_runs_the_same_number_of_micro_batches():
    lengths = [10, 10, 10, 10, 2, 2]
    # Rank 0 needs 4 micro-batches of 10 tokens; rank 1 splits its one [4, 5] to [4], [5],
    # then has nothing left to split: two empty micro-batches keep it in step.
    plan = plan_micro_batches(lengths, [[0, 1, 2, 3], [4, 5]], token_budget=10)
    assert plan == [[[0], [1], [2], [3]], [[4], [5], [], []]]
    plan = plan_micro_batches(lengths, [[0, 1], [4, 5]], token_budget=20)
    assert plan == [[[0, 1]], [[4, 5]]]


def test_padding_fraction_counts_what_the_plan_computes():
    lengths = [4, 2, 3]
    assert padding_fraction(lengths, [[[0, 1]], [[2], []]]) == 1 - 9 / 11
    assert padding_fraction(lengths, [[[0]], [[1], [2]]]) == 0.0
