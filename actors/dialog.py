"""Playing RLEF episodes: prompt, reply, run the public tests, feed back, try again.

An episode ends when the program passes the tests that give feedback, or at the turn
limit; its final program is then judged on all tests. The dialog is kept token in /
token out: the engine's sampled ids are appended as they are, and each feedback turn is
tokenized once (through the chat template) and appended; nothing is re-tokenized.

`play_episodes` advances groups of episodes in turn: one engine call writes a group's
next replies, then the sandbox runs their programs in the background while the engine
serves the next group.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from engines.backend import Engine
from engines.generation import Completion, SamplingConfig
from engines.rollout import Rollout, Turn
from problems import Problem
from problems.feedback import NO_CODE_FEEDBACK, RETRY_INSTRUCTION, feedback_message
from problems.prompts import extract_code, first_turn_ids, next_user_turn
from sandbox import ConfigError, Job, Judgement, TestSet

from .seeds import EpisodeSeeds

FEEDBACK_MODES = ("execution", "random", "none")
FEEDBACK_TESTS = ("public", "private")

Judge = Callable[[list[Job]], list[Judgement]]
"""Runs sandbox jobs, results in order: `Sandbox.run_many` or `SandboxPool.run`."""


def check_feedback(mode: str) -> None:
    """The one check of a `dialog.feedback` value, for training and evaluation."""
    if mode not in FEEDBACK_MODES:
        raise ConfigError(f"dialog.feedback {mode!r} is not one of {FEEDBACK_MODES}")


@dataclass
class DialogConfig:
    max_turns: int = 3
    """Replies per episode at most (1: the single-turn ablation)."""
    feedback: str = "execution"
    """`execution` (the paper), `random` (the execution feedback of another problem played
    alongside, the paper's control), or `none` ("Give it another try" only, no early
    stop: the last reply is judged)."""
    feedback_tests: str = "public"
    """Tests whose failures are fed back: `public` (the paper) or `private` (an ablation)."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Temperature 1.0 and no top-p for training rollouts (the paper)."""
    max_model_len: int = 2048
    """Longest dialog in tokens: an episode whose next reply (`sampling.max_new_tokens`)
    would not fit ends there (overflow), without a feedback turn no reply could follow."""
    pipeline_groups: int = 2
    """Episodes take turns in this many groups: one generates while another is judged."""

    def __post_init__(self) -> None:
        check_feedback(self.feedback)
        if self.feedback_tests not in FEEDBACK_TESTS:
            raise ConfigError(
                f"dialog.feedback_tests {self.feedback_tests!r} is not one of {FEEDBACK_TESTS}"
            )
        if self.max_turns < 1:
            raise ConfigError(f"dialog.max_turns must be at least 1, got {self.max_turns}")
        if self.pipeline_groups < 1:
            raise ConfigError(
                f"dialog.pipeline_groups must be at least 1, got {self.pipeline_groups}"
            )

    def reply_fits(self, dialog_tokens: int) -> bool:
        """Whether a whole reply still fits after a dialog of `dialog_tokens` tokens."""
        return dialog_tokens + self.sampling.max_new_tokens <= self.max_model_len


class Episode:
    """One problem's dialog in progress, and the rollout it becomes."""

    def __init__(self, problem: Problem, tokenizer, index: int = 0) -> None:
        self.problem = problem
        self.index = index
        """Its place in the batch: with the turn, it picks the seed of each reply."""
        ids = first_turn_ids(tokenizer, problem)
        self.rollout = Rollout(problem.name, ids, [0] * len(ids), [0.0] * len(ids))
        self.done = False
        self.stopped = False
        """Whether the last reply ended with the EOS token (not cut by the token limit)."""
        self.judgement: Judgement | None = None
        """The last reply's judgement on the feedback tests."""
        self.awaiting_judgement = False
        """A reply was written and its program is (or is about to be) in the sandbox."""

    @property
    def turn(self) -> int:
        return len(self.rollout.turns)

    def add_reply(self, completion: Completion, tokenizer, seed: int) -> None:
        rollout = self.rollout
        rollout.reply_starts.append(len(rollout.token_ids))
        rollout.token_ids += completion.token_ids
        rollout.trained_mask += [1] * len(completion.token_ids)
        rollout.behaviour_logprobs += completion.logprobs
        text = tokenizer.decode(completion.token_ids, skip_special_tokens=True)
        prefix = self.problem.reply_prefix if self.turn == 0 else ""
        code = extract_code(prefix + text)
        rollout.turns.append(
            Turn(text, code, False, weight_version=completion.weight_version, seed=seed)
        )
        self.stopped = completion.finish_reason == "stop"
        self.awaiting_judgement = True

    def add_feedback(self, message: str, tokenizer, config: DialogConfig) -> None:
        """Append the user turn `message`; if no whole reply would fit after it, end the
        episode instead (overflow), the dialog as it was."""
        text = next_user_turn(tokenizer, message, reply_stopped=self.stopped)
        ids = tokenizer(text, add_special_tokens=False).input_ids
        if not config.reply_fits(len(self.rollout.token_ids) + len(ids)):
            self.done = self.rollout.overflow = True
            return
        self.rollout.token_ids += ids
        self.rollout.trained_mask += [0] * len(ids)
        self.rollout.behaviour_logprobs += [0.0] * len(ids)
        self.rollout.turns[-1].feedback = message


def _feedback_tests(problem: Problem, config: DialogConfig) -> TestSet:
    """The tests whose failures are fed back: public, or private in that ablation."""
    return problem.public_tests if config.feedback_tests == "public" else problem.private_tests


def play_episodes(
    problems: Sequence[Problem],
    engine: Engine,
    judge: Judge,
    tokenizer,
    config: DialogConfig,
    seeds: EpisodeSeeds,
) -> list[Rollout]:
    """Play one episode per problem with `engine` (see `engines.backend`); rollouts in order.
    Reply t of episode i is sampled with `seeds.seed(i, t)`.

    The episodes are dealt into `config.pipeline_groups` groups that take turns: while
    the sandbox runs one group's programs (in a background thread), the engine writes the
    next group's replies, so that a dialog waiting for its tests holds up no other.
    """
    episodes = [Episode(problem, tokenizer, index) for index, problem in enumerate(problems)]
    groups = [episodes[g :: config.pipeline_groups] for g in range(config.pipeline_groups)]
    judging: dict[int, Future] = {}
    fed_back: dict[str, str] = {}  # each problem's latest execution feedback, for `random`
    finals: list[Future] = []
    finalized: set[int] = set()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge") as sandbox_thread:
        while True:
            progressed = False
            for number, group in enumerate(groups):
                if number in judging:
                    judging.pop(number).result()
                    _continue_or_stop(group, tokenizer, config, fed_back)
                live = _ready_to_generate(group, config)
                ended = [e for e in group if e.done and e.index not in finalized]
                if ended:  # judged on all tests while the engine goes on
                    finalized.update(e.index for e in ended)
                    finals.append(sandbox_thread.submit(_judge_final, ended, judge))
                if not live:
                    continue
                progressed = True
                started = time.monotonic()
                requests = [seeds.seed(e.index, e.turn) for e in live]
                prompts = [e.rollout.token_ids for e in live]
                completions = engine.generate(prompts, config.sampling, requests)
                elapsed = time.monotonic() - started
                for episode, completion, seed in zip(live, completions, requests, strict=True):
                    episode.add_reply(completion, tokenizer, seed)
                    episode.rollout.generate_s += elapsed
                judging[number] = sandbox_thread.submit(_judge_turn, live, judge, config)
            if not progressed and not judging:
                break
        for final in finals:
            final.result()
    return [episode.rollout for episode in episodes]


def _ready_to_generate(group: list[Episode], config: DialogConfig) -> list[Episode]:
    """The group's episodes that want a reply now; one whose reply would not fit ends
    (its prompt alone too long: no reply at all)."""
    for episode in group:
        if not episode.done and not config.reply_fits(len(episode.rollout.token_ids)):
            episode.done = episode.rollout.overflow = True
    return [e for e in group if not e.done and not e.awaiting_judgement]


def _continue_or_stop(
    group: list[Episode], tokenizer, config: DialogConfig, fed_back: dict[str, str]
) -> None:
    """After a group's programs were judged: stop the finished episodes, feed back to the
    rest. `fed_back` keeps each problem's latest execution feedback of this play."""
    judged = [e for e in group if e.awaiting_judgement]
    for episode in judged:
        episode.awaiting_judgement = False
        passed = episode.rollout.turns[-1].tests_passed and config.feedback != "none"
        episode.done = passed or episode.turn >= config.max_turns
    going_on = [e for e in judged if not e.done]
    for episode, message in zip(going_on, _feedback(going_on, config, fed_back), strict=True):
        episode.add_feedback(message, tokenizer, config)


def _judge_turn(live: list[Episode], judge: Judge, config: DialogConfig) -> None:
    """Each reply's program on the feedback tests, all of them (feedback lists each failure)."""
    with_code = [e for e in live if e.rollout.turns[-1].code is not None]
    started = time.monotonic()
    judgements = judge(
        [
            e.problem.job(e.rollout.turns[-1].code, _feedback_tests(e.problem, config))
            for e in with_code
        ]
    )
    elapsed = time.monotonic() - started
    for episode, judgement in zip(with_code, judgements, strict=True):
        episode.rollout.turns[-1].tests_passed = judgement.passed
        episode.rollout.sandbox_s += elapsed
        episode.judgement = judgement


def _feedback(going_on: list[Episode], config: DialogConfig, fed_back: dict[str, str]) -> list[str]:
    """The next user turn of each episode that goes on, by the configured feedback mode."""
    if config.feedback == "none":
        return [RETRY_INSTRUCTION] * len(going_on)
    messages = []
    for episode in going_on:
        if episode.rollout.turns[-1].code is None:
            messages.append(NO_CODE_FEEDBACK)
            continue
        tests = _feedback_tests(episode.problem, config)
        messages.append(feedback_message(tests, episode.judgement))
    names = [e.problem.name for e in going_on]
    fed_back.update(zip(names, messages, strict=True))
    if config.feedback == "random":
        return _others_feedback(names, messages, fed_back)
    return messages


def _others_feedback(names: list[str], messages: list[str], fed_back: dict[str, str]) -> list[str]:
    """Random feedback: each episode gets the message of the next episode (cyclically)
    that plays another problem: real feedback, about another problem. Where none of them
    does (a lone episode, or an evaluation's repeats of one problem), feedback this play
    gave another problem earlier; where there is none, "Give it another try" only,
    never the episode's own feedback."""
    shifted = []
    for index, name in enumerate(names):
        others = (
            messages[(index + step) % len(names)]
            for step in range(1, len(names))
            if names[(index + step) % len(names)] != name
        )
        earlier = (m for other, m in reversed(fed_back.items()) if other != name)
        shifted.append(next(others, next(earlier, RETRY_INSTRUCTION)))
    return shifted


def _judge_final(episodes: list[Episode], judge: Judge) -> None:
    """The final program of each episode on all tests, public and private."""
    final = [e for e in episodes if e.rollout.turns and e.rollout.turns[-1].code is not None]
    started = time.monotonic()
    judgements = judge(
        [
            e.problem.job(e.rollout.turns[-1].code, e.problem.all_tests, stop_on_first_failure=True)
            for e in final
        ]
    )
    elapsed = time.monotonic() - started
    for episode, judgement in zip(final, judgements, strict=True):
        episode.rollout.passed = judgement.passed
        episode.rollout.sandbox_s += elapsed
