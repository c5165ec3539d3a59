"""Which sequences go into which forward/backward: sequences packed end to end into rows,
rows grouped into micro-batches under a token budget, balanced over ranks, with the same
number of micro-batches on every rank.

Packing, not only padding: a row's sequences attend only to themselves (`learner.batch`),
so short sequences fill the room that padding would take. A micro-batch is a list of
rows; a row is a list of sequence indices placed one after the other (`placement`).

Every rank computes the whole plan from the same inputs, so the ranks agree without
talking. Equal counts matter: under
ZeRO-2/3 every backward (and under ZeRO-3 every forward) is a collective, and a rank that
runs one more would wait forever.
"""

from __future__ import annotations

from collections.abc import Sequence

MicroBatch = list[list[int]]
"""Rows of sequence indices."""
PADDING_LIMIT = 0.1
"""Most of a micro-batch's computed positions that may be padding."""


def pack_rows(lengths: Sequence[int], indices: Sequence[int], width: int) -> list[list[int]]:
    """`indices` packed into rows of at most `width` tokens, first fit by decreasing
    length; a sequence longer than `width` gets a row of its own."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(indices, key=lambda index: (-lengths[index], index)):
        fit = next((r for r, free in enumerate(room) if free >= lengths[index]), None)
        if fit is None:
            rows.append([index])
            room.append(width - lengths[index])
        else:
            rows[fit].append(index)
            room[fit] -= lengths[index]
    return rows


def micro_batches(
    lengths: Sequence[int], indices: Sequence[int], token_budget: int
) -> list[MicroBatch]:
    """`indices` packed into rows as wide as the longest of them, and the rows, fullest
    first, grouped into micro-batches of at most `token_budget` tokens (at least one row
    each) whose rows are all at least `1 - PADDING_LIMIT` as full as their fullest: a
    micro-batch computes rows x its fullest row, so its padding stays under the limit.

    Rows no wider than the longest sequence: attention without variable-length kernels
    computes a row's full width squared, so wider rows would trade padding for more
    attention than the padding costs."""
    if not indices:
        return []
    rows = pack_rows(lengths, indices, max(lengths[index] for index in indices))
    fills = [sum(lengths[index] for index in row) for row in rows]
    batches: list[MicroBatch] = []
    widest = 0
    for fill, row in sorted(zip(fills, rows, strict=True), key=lambda pair: -pair[0]):
        fits = batches and (len(batches[-1]) + 1) * widest <= token_budget
        if fits and fill >= (1 - PADDING_LIMIT) * widest:
            batches[-1].append(row)
        else:
            batches.append([row])
            widest = fill
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


def _halves(batch: MicroBatch) -> tuple[MicroBatch, MicroBatch] | None:
    """A micro-batch as two: half of its rows each, or, with one row, half of its
    sequences each; None when it holds a single sequence."""
    if len(batch) >= 2:
        return batch[: len(batch) // 2], batch[len(batch) // 2 :]
    if len(batch) == 1 and len(batch[0]) >= 2:
        row = batch[0]
        return [row[: len(row) // 2]], [row[len(row) // 2 :]]
    return None


def plan_micro_batches(
    lengths: Sequence[int], shares: list[list[int]], token_budget: int
) -> list[list[MicroBatch]]:
    """plan[rank][step] = the micro-batch rank `rank` runs at micro-step `step`, from each
    rank's share of sequences (`split_across_ranks`).

    Every rank gets the same number of micro-steps: a rank with fewer splits its fullest
    micro-batches in halves; a micro-batch that is still missing is empty (the rank runs
    a pass that counts for nothing, to keep the collectives in step).
    """
    plan = [micro_batches(lengths, share, token_budget) for share in shares]
    steps = max(len(batches) for batches in plan)
    for batches in plan:
        while len(batches) < steps:
            splittable = [b for b in range(len(batches)) if _halves(batches[b])]
            if not splittable:
                batches.append([])
                continue
            sizes = {b: sum(lengths[i] for row in batches[b] for i in row) for b in splittable}
            largest = max(splittable, key=lambda b: (sizes[b], -b))
            batches[largest : largest + 1] = list(_halves(batches[largest]))
    return plan


def placement(lengths: Sequence[int], batch: MicroBatch) -> tuple[list[int], list[tuple[int, int]]]:
    """The micro-batch's sequence indices in order, and each one's (row, first position)."""
    order, places = [], []
    for row, indices in enumerate(batch):
        offset = 0
        for index in indices:
            order.append(index)
            places.append((row, offset))
            offset += lengths[index]
    return order, places


def padding_fraction(lengths: Sequence[int], plan: list[list[MicroBatch]]) -> float:
    """Share of the computed token positions that are padding, over a whole plan (a
    micro-batch computes rows x its fullest row)."""
    computed = real = 0
    for batches in plan:
        for batch in batches:
            fills = [sum(lengths[index] for index in row) for row in batch]
            if fills:
                computed += len(fills) * max(fills)
                real += sum(fills)
    return 1.0 - real / computed if computed else 0.0
