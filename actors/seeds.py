"""Per-request sampling seeds: independent noise for every reply a run samples.

vLLM (and the transformers engine) give identical noise to identical seeds, so two
requests that share a seed sample correlated replies. A request's seed is therefore a
hash of everything that identifies it within a run, (run seed, phase, iteration,
episode, turn), and never a sum of them: sums such as `base + iteration + episode`
repeat across iterations (iteration i + 1, episode e is iteration i, episode e + 1).

`phase` keeps training, evaluation and benchmarks apart; `iteration` is the training
iteration the episodes belong to (for an evaluation: the iteration after which it runs,
0 before training); `episode` is the episode's place in its phase's batch, so a chunk
played anywhere, or again after a lost actor, samples with the same seeds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

PHASES = ("train", "eval", "bench")
SEED_BITS = 63
"""Seeds are non-negative and fit a signed 64-bit integer (torch generators, vLLM)."""


def request_seed(run_seed: int, phase: str, iteration: int, episode: int, turn: int) -> int:
    """The seed of turn `turn` of episode `episode` in `phase` of `iteration`: 63 bits of
    BLAKE2b of the five. Two requests share a seed only if the hash collides: among the
    ~3 million replies of a paper run (1000 iterations x 1024 episodes x 3 turns) that
    has a chance of about n^2 / 2^64 = 5e-7."""
    key = f"{run_seed}/{phase}/{iteration}/{episode}/{turn}".encode()
    digest = hashlib.blake2b(key, digest_size=8, person=b"rlef-seed").digest()
    return int.from_bytes(digest, "big") >> (64 - SEED_BITS)


@dataclass(frozen=True)
class EpisodeSeeds:
    """The seeds of a batch of episodes: which run, phase and iteration they belong to,
    and the phase's index of the batch's first episode."""

    run_seed: int
    phase: str
    iteration: int
    first_episode: int = 0

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase {self.phase!r} is not one of {', '.join(PHASES)}")

    def from_episode(self, offset: int) -> EpisodeSeeds:
        """The seeds of the part of the batch that starts `offset` episodes in."""
        return replace(self, first_episode=self.first_episode + offset)

    def seed(self, episode: int, turn: int) -> int:
        """The seed of reply `turn` (from 0) of the batch's episode `episode`."""
        return request_seed(
            self.run_seed, self.phase, self.iteration, self.first_episode + episode, turn
        )
