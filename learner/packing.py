"""Which sequences go into which forward/backward: length bucketing under a token budget,
balanced over ranks, with the same number of micro-batches on every rank.

Every rank computes the whole plan from the same inputs, so the ranks agree without
talking. Equal counts matter: under ZeRO-2/3 every backward (and under ZeRO-3 every
forward) is a collective, and a rank that runs one more would wait forever.
"""

from __future__ import annotations

from collections.abc import Sequence


def bucket_by_length(
    lengths: Sequence[int], indices: Sequence[int], token_budget: int
) -> list[list[int]]:
    """Micro-batches of `indices` (positions into `lengths`), longest first, each padded to
    its longest sequence and holding at most `token_budget` tokens padding included; a
    sequence longer than the budget gets a micro-batch of its own."""
    ordered = sorted(indices, key=lambda index: (-lengths[index], index))
    batches: list[list[int]] = []
    for index in ordered:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= token_budget:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def split_across_ranks(
    lengths: Sequence[int], indices: Sequence[int], ranks: int
) -> list[list[int]]:
    """`indices` dealt to `ranks` ranks, longest first to the rank with the fewest tokens,
    so that every rank has about the same work."""
    shares: list[list[int]] = [[] for _ in range(ranks)]
    loads = [0] * ranks
    for index in sorted(indices, key=lambda index: (-lengths[index], index)):
        rank = min(range(ranks), key=lambda r: (loads[r], r))
        shares[rank].append(index)
        loads[rank] += lengths[index]
    return shares


def plan_micro_batches(
    lengths: Sequence[int], shares: list[list[int]], token_budget: int
) -> list[list[list[int]]]:
    """plan[rank][step] = the sequences rank `rank` runs at micro-step `step`, from each
    rank's share of sequences (`split_across_ranks`).

    Every rank gets the same number of micro-steps: a rank with fewer splits its largest
    micro-batches in halves; a micro-batch that is still missing is an empty list (the rank
    runs a pass that counts for nothing, to keep the collectives in step).
    """
    plan = [bucket_by_length(lengths, share, token_budget) for share in shares]
    steps = max(len(batches) for batches in plan)
    for batches in plan:
        while len(batches) < steps:
            largest = max(range(len(batches)), key=lambda b: (len(batches[b]), -b), default=None)
            if largest is None or len(batches[largest]) < 2:
                batches.append([])
                continue
            rows = batches.pop(largest)
            batches[largest:largest] = [rows[: len(rows) // 2], rows[len(rows) // 2 :]]
    return plan


def padding_fraction(lengths: Sequence[int], plan: list[list[list[int]]]) -> float:
    """Share of the computed token positions that are padding, over a whole plan."""
    computed = real = 0
    for batches in plan:
        for rows in batches:
            if rows:
                computed += len(rows) * max(lengths[index] for index in rows)
                real += sum(lengths[index] for index in rows)
    return 1.0 - real / computed if computed else 0.0
