"""The training problems as a run hands them out: a seeded order, reshuffled every epoch."""

from __future__ import annotations

import random

from .config import DataError
from .records import Problem


class ProblemStream:
    """The training problems in a seeded order, reshuffled every epoch; `position` counts
    the problems handed out, so that a resumed run continues where it stopped."""

    def __init__(self, problems: list[Problem], seed: int, position: int = 0) -> None:
        if not problems:
            raise DataError("the training split has no problems (check data.*)")
        self.problems = problems
        self.seed = seed
        self.position = position

    def take(self, count: int) -> list[Problem]:
        taken = []
        for position in range(self.position, self.position + count):
            epoch, index = divmod(position, len(self.problems))
            order = list(range(len(self.problems)))
            random.Random(self.seed * 7919 + epoch).shuffle(order)
            taken.append(self.problems[order[index]])
        self.position += count
        return taken
