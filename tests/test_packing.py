"""Micro-batch planning: sequences packed into rows under a token budget, balanced over
ranks, the same number of micro-steps on every rank."""

from learner.packing import (
    PADDING_LIMIT,
    micro_batches,
    pack_rows,
    padding_fraction,
    placement,
    plan_micro_batches,
    split_across_ranks,
)


def test_rows_are_packed_first_fit_by_decreasing_length():
    lengths = [6, 3, 5, 4, 2, 1]
    # Width 6, longest first: 6 | 5 | 4 | 3 fits nowhere, a row | 2 goes with 4 | 1 with 5.
    rows = pack_rows(lengths, range(6), width=6)
    assert rows == [[0], [2, 5], [3, 4], [1]]
    assert all(sum(lengths[i] for i in row) <= 6 for row in rows)
    # Longer than the width: alone.
    assert pack_rows([9, 2], [0, 1], width=4) == [[0], [1]]


def test_micro_batches_hold_the_budget_padding_included():
    lengths = [6, 3, 5, 4, 2, 1]
    # Rows as wide as the longest sequence (6), fills 6, 6, 6, 3; a budget of 12 takes
    # two full rows; the row of 3 would be half padding beside a full one: alone.
    assert micro_batches(lengths, range(6), token_budget=12) == [
        [[0], [2, 5]],
        [[3, 4]],
        [[1]],
    ]
    # A budget below one row still runs one row at a time.
    assert micro_batches(lengths, [0, 1], token_budget=2) == [[[0]], [[1]]]
    assert micro_batches(lengths, [], token_budget=2) == []


def test_padding_stays_under_the_limit_whatever_the_lengths():
    import random

    rng = random.Random(0)
    for _ in range(50):
        lengths = [rng.randrange(1, 400) for _ in range(rng.randrange(1, 60))]
        batches = micro_batches(lengths, range(len(lengths)), token_budget=rng.randrange(1, 3000))
        assert sorted(i for batch in batches for row in batch for i in row) == list(
            range(len(lengths))
        )
        assert padding_fraction(lengths, [batches]) < PADDING_LIMIT


def test_ranks_get_about_equal_tokens():
    lengths = [8, 7, 6, 5, 4, 3, 2, 1]
    shares = split_across_ranks(lengths, range(8), ranks=2)
    assert sorted(i for share in shares for i in share) == list(range(8))
    loads = [sum(lengths[i] for i in share) for share in shares]
    assert loads == [18, 18]


def test_every_rank_runs_the_same_number_of_micro_steps():
    lengths = [10, 10, 10, 10, 2, 2, 3]
    # Rank 0: four rows of 10, one per micro-batch. Rank 1: rows as wide as its longest
    # (3): [6], [4], [5] in one micro-batch of 10 tokens; split by rows, fullest first,
    # until nothing splits; then an empty micro-batch keeps it in step.
    plan = plan_micro_batches(lengths, [[0, 1, 2, 3], [4, 5, 6]], token_budget=10)
    assert plan[0] == [[[0]], [[1]], [[2]], [[3]]]
    assert plan[1] == [[[6]], [[4]], [[5]], []]
    plan = plan_micro_batches(lengths, [[0, 1], [4, 5]], token_budget=20)
    assert plan == [[[[0], [1]]], [[[4], [5]]]]


def test_placement_lays_rows_end_to_end():
    lengths = [4, 2, 3]
    assert placement(lengths, [[0, 1], [2]]) == ([0, 1, 2], [(0, 0), (0, 4), (1, 0)])


def test_padding_fraction_counts_what_the_plan_computes():
    lengths = [4, 2, 3]
    # Rank 0: rows [4] and [2] -> 2 x 4 computed; rank 1: one row [3].
    assert padding_fraction(lengths, [[[[0], [1]]], [[[2]], []]]) == 1 - 9 / 11
    assert padding_fraction(lengths, [[[[0, 1]]], [[[2]]]]) == 0.0
