"""Episodes, token in / token out: real engines, the real sandbox, every feedback mode.

The quickly built tiny model writes little valid code, so where a test needs a known
program it pre-fills the reply with it (`Problem.reply_prefix`, as HumanEval does):
the first code block of prefix + reply is then that program, whatever the model adds.
"""

import dataclasses
import time

import pytest
from transformers import AutoTokenizer

from actors.dialog import DialogConfig, play_episodes
from actors.seeds import EpisodeSeeds
from engines.backend import make_engine
from engines.generation import EngineConfig, ModelConfig, SamplingConfig
from problems.feedback import NO_CODE_FEEDBACK, RETRY_INSTRUCTION
from problems.prompts import render_first_turn
from problems.toy import generate_toy

SAMPLING = SamplingConfig(temperature=1.0, max_new_tokens=24)
SEEDS = EpisodeSeeds(run_seed=3, phase="train", iteration=1)


@pytest.fixture(scope="module")
def tokenizer(quick_tiny_model):
    return AutoTokenizer.from_pretrained(quick_tiny_model)


@pytest.fixture(scope="module", params=["vllm", "hf"])
def engine(request, quick_tiny_model):
    if request.param == "vllm":
        pytest.importorskip("vllm")
    return make_engine(EngineConfig(backend=request.param), ModelConfig(path=str(quick_tiny_model)))


def with_program(problem, program):
    return dataclasses.replace(problem, reply_prefix=f"```python\n{program}```\n")


@pytest.fixture(scope="module")
def problems():
    return generate_toy("valid", 4)


def play(problems, engine, sandbox, tokenizer, **fields):
    config = DialogConfig(sampling=SAMPLING, **fields)
    return play_episodes(problems, engine, sandbox.run_many, tokenizer, config, SEEDS)


def test_token_ids_decode_to_the_dialog_and_masks_cover_exactly_the_replies(
    problems, engine, sandbox, tokenizer
):
    rollouts = play(problems, engine, sandbox, tokenizer)
    for problem, rollout in zip(problems, rollouts, strict=True):
        n = len(rollout.token_ids)
        assert len(rollout.trained_mask) == len(rollout.behaviour_logprobs) == n
        prompt = tokenizer(render_first_turn(tokenizer, problem), add_special_tokens=False)
        assert rollout.token_ids[: rollout.reply_starts[0]] == prompt.input_ids
        ends = rollout.reply_starts[1:] + [n]
        trained = set()
        for turn, start in zip(rollout.turns, rollout.reply_starts, strict=True):
            # The reply runs from its start to the first untrained token.
            end = start
            while end < n and rollout.trained_mask[end]:
                end += 1
            trained.update(range(start, end))
            assert tokenizer.decode(rollout.token_ids[start:end], skip_special_tokens=True) == (
                turn.reply
            )
            assert all(lp <= 0 for lp in rollout.behaviour_logprobs[start:end])
        assert trained == {i for i in range(n) if rollout.trained_mask[i]}
        assert all(rollout.behaviour_logprobs[i] == 0.0 for i in range(n) if i not in trained)
        assert rollout.value_positions == [s - 1 for s in rollout.reply_starts]
        assert all(start < end for start, end in zip(rollout.reply_starts, ends, strict=True))
        # Feedback turns follow the chat template: the text decodes to the message.
        for turn in rollout.turns[:-1]:
            assert turn.feedback in tokenizer.decode(rollout.token_ids)


def test_a_program_that_passes_ends_the_episode_at_turn_one(problems, engine, sandbox, tokenizer):
    solved = [with_program(p, p.solutions[0]) for p in problems]
    rollouts = play(solved, engine, sandbox, tokenizer)
    assert all(len(r.turns) == 1 and r.turns[0].tests_passed and r.passed for r in rollouts)
    assert all(r.turns[0].feedback == "" for r in rollouts)


def test_failing_programs_get_execution_feedback_up_to_the_turn_limit(
    problems, engine, sandbox, tokenizer
):
    wrong = [with_program(p, p.incorrect_solutions[0]) for p in problems]
    rollouts = play(wrong, engine, sandbox, tokenizer)
    for problem, rollout in zip(wrong, rollouts, strict=True):
        assert not rollout.passed
        first = rollout.turns[0]
        assert first.code == problem.incorrect_solutions[0]
        if first.tests_passed:  # a bug the public tests miss: the private ones decide
            assert len(rollout.turns) == 1
            continue
        assert first.feedback.startswith("Your code failed the following tests:\n\n- input '")
        assert 1 < len(rollout.turns) <= 3
        for turn in rollout.turns[:-1]:  # every turn but the last was followed by feedback
            assert not turn.tests_passed
            if turn.code is None:
                assert turn.feedback == NO_CODE_FEEDBACK
            else:
                assert turn.feedback.startswith("Your code failed the following tests:")


def test_random_feedback_comes_from_another_problem(problems, engine, sandbox, tokenizer):
    wrong = [with_program(p, p.incorrect_solutions[0]) for p in problems]
    own = play(wrong, engine, sandbox, tokenizer)
    shuffled = play(wrong, engine, sandbox, tokenizer, feedback="random", pipeline_groups=1)
    failing = [i for i, r in enumerate(own) if not r.turns[0].tests_passed]
    assert len(failing) >= 2
    own_feedback = {own[i].turns[0].feedback for i in failing}
    for i in failing:
        feedback = shuffled[i].turns[0].feedback
        assert feedback != own[i].turns[0].feedback
        assert feedback in own_feedback  # another failing problem's, never an empty one


def test_random_feedback_is_never_the_problems_own_when_episodes_repeat_problems(
    problems, engine, sandbox, tokenizer
):
    """An evaluation plays each problem several times in a row: random feedback must still
    come from another problem, and from none when every episode plays the same one."""
    wrong = [with_program(p, p.incorrect_solutions[0]) for p in problems]
    repeated = [p for p in wrong for _ in range(3)]
    own = play(wrong, engine, sandbox, tokenizer)
    own_feedback = {r.problem: r.turns[0].feedback for r in own}
    shuffled = play(repeated, engine, sandbox, tokenizer, feedback="random", pipeline_groups=1)
    failing = [r for r in shuffled if not r.turns[0].tests_passed]
    assert len({r.problem for r in failing}) >= 2
    for rollout in failing:
        feedback = rollout.turns[0].feedback
        assert feedback != own_feedback[rollout.problem]
        assert feedback in own_feedback.values()
    lone = play([wrong[0]] * 3, engine, sandbox, tokenizer, feedback="random")
    for rollout in lone:
        if not rollout.turns[0].tests_passed:
            assert rollout.turns[0].feedback == RETRY_INSTRUCTION


def test_no_feedback_mode_never_stops_early_and_says_only_try_again(
    problems, engine, sandbox, tokenizer
):
    solved = [with_program(p, p.solutions[0]) for p in problems]
    rollouts = play(solved, engine, sandbox, tokenizer, feedback="none")
    for rollout in rollouts:
        assert len(rollout.turns) == 3
        assert [t.feedback for t in rollout.turns[:-1]] == [RETRY_INSTRUCTION] * 2


def test_single_turn_and_private_feedback_ablations(problems, engine, sandbox, tokenizer):
    wrong = [with_program(p, p.incorrect_solutions[0]) for p in problems]
    assert all(len(r.turns) == 1 for r in play(wrong, engine, sandbox, tokenizer, max_turns=1))
    private = play(wrong, engine, sandbox, tokenizer, feedback_tests="private", max_turns=2)
    assert sum(not r.turns[0].tests_passed for r in private) >= 2
    for problem, rollout in zip(wrong, private, strict=True):
        if not rollout.turns[0].tests_passed:
            quoted = rollout.turns[0].feedback
            assert any(f"- input '{i}' failed" in quoted for i in problem.private_tests.inputs)
            assert not any(
                f"- input '{i}' failed" in quoted
                for i in problem.public_tests.inputs
                if i not in problem.private_tests.inputs
            )


def test_a_context_overflow_ends_the_episode_cleanly(problems, engine, sandbox, tokenizer):
    prompt_length = len(
        tokenizer(render_first_turn(tokenizer, problems[0]), add_special_tokens=False).input_ids
    )
    rollouts = play(
        problems[:1],
        engine,
        sandbox,
        tokenizer,
        max_model_len=prompt_length + SAMPLING.max_new_tokens + 5,
    )
    [rollout] = rollouts
    assert rollout.overflow
    assert len(rollout.turns) == 1
    assert not rollout.passed
    # No feedback turn that no reply could follow: the dialog ends with the reply.
    assert rollout.turns[0].feedback == ""
    assert rollout.trained_mask[-1] == 1
    assert len(rollout.token_ids) <= prompt_length + SAMPLING.max_new_tokens


def test_a_prompt_that_leaves_no_room_for_a_reply_plays_no_turn(
    problems, engine, sandbox, tokenizer
):
    prompt_length = len(
        tokenizer(render_first_turn(tokenizer, problems[0]), add_special_tokens=False).input_ids
    )
    config = DialogConfig(sampling=SAMPLING, max_model_len=prompt_length + SAMPLING.max_new_tokens)
    assert config.reply_fits(prompt_length) and not config.reply_fits(prompt_length + 1)
    rollouts = play(
        problems[:2],
        engine,
        sandbox,
        tokenizer,
        max_model_len=prompt_length + SAMPLING.max_new_tokens - 1,
    )
    assert rollouts[0].overflow and rollouts[0].turns == [] and not rollouts[0].passed


def test_replies_without_code_get_the_no_code_feedback(problems, engine, sandbox, tokenizer):
    rollouts = play(problems, engine, sandbox, tokenizer, max_turns=2)
    without_code = [r for r in rollouts if r.turns[0].code is None]
    assert without_code  # the quickly built model rarely writes a whole code block
    for rollout in without_code:
        assert len(rollout.turns) == 2
        assert rollout.turns[0].feedback == NO_CODE_FEEDBACK
        assert not rollout.passed


class _Timed:
    """Records when each call of `function` ran (instrumentation around the real thing)."""

    def __init__(self, function):
        self.function = function
        self.spans = []

    def __call__(self, *args):
        started = time.monotonic()
        try:
            return self.function(*args)
        finally:
            self.spans.append((started, time.monotonic()))


def test_the_sandbox_runs_one_group_while_the_engine_writes_another(
    problems, engine, sandbox, tokenizer
):
    slow = [
        with_program(p, "import time\ntime.sleep(0.2)\n" + p.incorrect_solutions[0])
        for p in generate_toy("valid", 8)
    ]
    generate = _Timed(engine.generate)
    judge = _Timed(sandbox.run_many)

    class TimedEngine:
        def generate(self, *args):
            return generate(*args)

    config = DialogConfig(sampling=SAMPLING, max_turns=3, pipeline_groups=2)
    play_episodes(slow, TimedEngine(), judge, tokenizer, config, SEEDS)
    overlaps = [(g, j) for g in generate.spans for j in judge.spans if g[0] < j[1] and j[0] < g[1]]
    assert len(generate.spans) >= 4 and overlaps


def test_pipelining_changes_nothing_but_the_timing_with_per_request_seeds(
    problems, sandbox, tokenizer, quick_tiny_model
):
    pytest.importorskip("vllm")
    engine = make_engine(EngineConfig(), ModelConfig(path=str(quick_tiny_model)))
    wrong = [with_program(p, p.incorrect_solutions[0]) for p in generate_toy("valid", 6)]
    plays = [
        play_episodes(
            wrong,
            engine,
            sandbox.run_many,
            tokenizer,
            DialogConfig(sampling=SAMPLING, pipeline_groups=groups),
            EpisodeSeeds(9, "train", 1),
        )
        for groups in (1, 3)
    ]
    assert [r.token_ids for r in plays[0]] == [r.token_ids for r in plays[1]]
    assert [r.passed for r in plays[0]] == [r.passed for r in plays[1]]
