"""The rollout record: one played episode, as the learner needs it, token for token."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Turn:
    """One model reply and what came of it."""

    reply: str
    """The reply's text, decoded from the sampled tokens (the reply prefix not included)."""
    code: str | None
    """The program extracted from the reply, or None: no valid code."""
    tests_passed: bool
    """Whether the program passed the tests that give feedback (public, by default)."""
    feedback: str = ""
    """The user turn that followed (empty after the last turn)."""
    weight_version: int = 0
    """The weights that sampled this reply."""
    seed: int = 0
    """The seed its sampling request carried (`actors.seeds`)."""


@dataclass
class Rollout:
    """A whole episode: the dialog's token ids and, aligned with them, what to train on."""

    problem: str
    """The problem's name."""
    token_ids: list[int]
    """The dialog: prompt, replies exactly as sampled, feedback turns tokenized once."""
    trained_mask: list[int]
    """1 for tokens the model sampled (its replies), 0 for prompt and feedback tokens."""
    behaviour_logprobs: list[float]
    """The sampling log-prob of each trained token (temperature and top-p applied); 0 elsewhere."""
    reply_starts: list[int] = field(default_factory=list)
    """Index of each reply's first token; reply t is token_ids[reply_starts[t]:end of turn]."""
    turns: list[Turn] = field(default_factory=list)
    passed: bool = False
    """Whether the final program passes all tests, public and private."""
    overflow: bool = False
    """The episode ended because the next reply would not fit in the context."""
    generate_s: float = 0.0
    """Wall-clock seconds of the generation calls this episode took part in."""
    sandbox_s: float = 0.0
    """Wall-clock seconds of the sandbox calls this episode took part in."""

    @property
    def value_positions(self) -> list[int]:
        """The last prompt token before each reply: where the turn-level value is read."""
        return [start - 1 for start in self.reply_starts]

    @property
    def weight_version(self) -> int:
        """The oldest weights that sampled any of its replies (staleness is judged by it)."""
        return min((turn.weight_version for turn in self.turns), default=0)


@dataclass(frozen=True)
class RolloutSummary:
    """What the driver and the learner's plan read of a rollout, without its tokens: a
    few numbers, whatever the dialog's length."""

    iteration: int
    """The phase's iteration (training), or the evaluation's (after iteration N)."""
    episode: int
    """Its index among the phase's episodes: the data order."""
    group: int
    """The index of the chunk it was played in (episodes of one chunk arrive together)."""
    group_size: int
    """How many rollouts that chunk holds."""
    problem: str
    tokens: int
    trained_tokens: int
    turns: int
    turns_with_code: int
    passed: bool
    overflow: bool
    weight_version: int
    generate_s: float
    sandbox_s: float


def summarize(rollout: Rollout, iteration: int, episode: int, group: int, group_size: int):
    """`rollout`'s `RolloutSummary`, as episode `episode` of chunk `group` (of
    `group_size` rollouts) of `iteration`."""
    return RolloutSummary(
        iteration=iteration,
        episode=episode,
        group=group,
        group_size=group_size,
        problem=rollout.problem,
        tokens=len(rollout.token_ids),
        trained_tokens=sum(rollout.trained_mask),
        turns=len(rollout.turns),
        turns_with_code=sum(turn.code is not None for turn in rollout.turns),
        passed=rollout.passed,
        overflow=rollout.overflow,
        weight_version=rollout.weight_version,
        generate_s=rollout.generate_s,
        sandbox_s=rollout.sandbox_s,
    )


@dataclass(frozen=True)
class StoredRollout:
    """A rollout in Ray's object store: its summary, and the object reference whoever
    needs its tokens fetches (a learner rank, the writer of the run's Parquet)."""

    summary: RolloutSummary
    reference: object
    """The `ray.ObjectRef` of the `Rollout` (inside a record, so Ray passes the reference
    itself from call to call, never the rollout)."""
