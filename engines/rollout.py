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
