"""`python -m launch.evaluate`: the real engine and sandbox; metrics recomputed from samples."""

import json

import pytest

from engines.rollout import Rollout, Turn
from launch.evaluate import main
from launch.evaluation import repair, repeated_retries, solve_rates_by_turn, stopping_verdicts


def _rollout(*codes) -> Rollout:
    rollout = Rollout("p", [1], [0], [0.0])
    rollout.turns = [Turn("", code, False) for code in codes]
    return rollout


def test_solve_rates_by_turn_take_each_episodes_program_at_that_turn():
    verdicts = [[False, True], [True], [False, False, True], [], [True, False, False]]
    rates = solve_rates_by_turn(verdicts, 3)
    # turn 1: episodes 2 and 5; turn 2: 1, 2; turn 3: 1, 2, 3 (5's last program fails).
    assert rates == {"solve_rate_turn_1": 0.4, "solve_rate_turn_2": 0.4, "solve_rate_turn_3": 0.6}
    assert repair(rates, 3) == pytest.approx(0.2)
    assert stopping_verdicts(True, 3) == [False, False, True]
    assert stopping_verdicts(False, 0) == []


def test_repeated_retries_count_unchanged_programs_only():
    rollouts = [_rollout("a", "a", "b"), _rollout(None, None), _rollout("x"), _rollout("c", "d")]
    assert repeated_retries(rollouts) == (1, 4)


def _recomputed(samples: list[dict], max_turns: int) -> dict:
    verdicts = [
        [False] * (len(s["turns"]) - 1) + [s["passed"]] if s["turns"] else [] for s in samples
    ]
    retries = [t for s in samples for t in s["turns"][1:]]
    rates = solve_rates_by_turn(verdicts, max_turns)
    return rates | {
        "repair": repair(rates, max_turns),
        "retries": len(retries),
        "retries_repeated": sum(t["repeated"] for t in retries) / len(retries) if retries else 0.0,
    }


def test_the_random_feedback_control_replays_the_same_first_turns(
    quick_tiny_model, tmp_path, capsys
):
    """`eval.random_control`: the by-turn rates, repair, repeats and the gap recompute from
    the samples of both plays, and turn 1 is the same sample in both (same seeds)."""
    out = tmp_path / "eval.json"
    overrides = [
        f"model.path={quick_tiny_model}",
        "engine=hf",
        "data.split=valid",
        "eval.limit=6",
        "eval.rollouts=2",
        "eval.max_new_tokens=32",
        "eval.random_control=true",
        f"eval.out={out}",
    ]
    assert main(overrides) == 0
    printed = capsys.readouterr().out
    assert "execution feedback" in printed and "random feedback" in printed
    assert "repair gap (execution - random feedback)" in printed
    result = json.loads(out.read_text())
    true = [s for p in result["problems"] for s in p["samples"]]
    randomized = [s for p in result["problems"] for s in p["random_feedback_samples"]]
    assert [s["turns"][0] for s in true] == [s["turns"][0] for s in randomized]
    assert result["feedback"]["execution"] == pytest.approx(_recomputed(true, 3))
    assert result["feedback"]["random"] == pytest.approx(_recomputed(randomized, 3))
    assert result["repair_gap"] == pytest.approx(
        result["feedback"]["execution"]["repair"] - result["feedback"]["random"]["repair"]
    )


def test_no_feedback_judges_every_turns_program(quick_tiny_model, tmp_path):
    out = tmp_path / "eval.json"
    overrides = [
        f"model.path={quick_tiny_model}",
        "engine=hf",
        "eval.limit=4",
        "eval.rollouts=2",
        "eval.max_new_tokens=32",
        "dialog.feedback=none",
        f"eval.out={out}",
    ]
    assert main(overrides) == 0
    result = json.loads(out.read_text())
    samples = [s for p in result["problems"] for s in p["samples"]]
    assert all(len(s["turns"]) == 3 or s["overflow"] for s in samples)
    analysis = result["feedback"]["none"]
    assert analysis["solve_rate_turn_3"] == pytest.approx(
        sum(s["passed"] for s in samples) / len(samples)
    )
    assert 0 <= analysis["solve_rate_turn_1"] <= 1 and "repair_gap" not in result


def test_a_bad_feedback_mode_is_one_line(capsys):
    assert main(["dialog.feedback=shuffled"]) == 2
    err = capsys.readouterr().err.strip()
    assert "dialog.feedback 'shuffled' is not one of" in err and "\n" not in err


@pytest.mark.parametrize("engine", ["cpu", "hf"])
def test_evaluate_writes_samples_that_recompute_the_metrics(
    quick_tiny_model, tmp_path, engine, capsys
):
    if engine == "cpu":
        pytest.importorskip("vllm")
    out = tmp_path / "eval.json"
    overrides = [
        f"model.path={quick_tiny_model}",
        f"engine={engine}",
        "data=toy",
        "data.split=valid",
        "eval.limit=3",
        "eval.rollouts=2",
        "eval.rollouts_10at100=2",
        "eval.max_new_tokens=32",
        f"eval.out={out}",
    ]
    assert main(overrides) == 0
    printed = capsys.readouterr().out
    assert "1@3" in printed and "10@6" in printed and str(out) in printed
    result = json.loads(out.read_text())
    problems = result["problems"]
    assert len(problems) == 3
    per_problem = []
    for problem in problems:
        assert problem["name"].startswith("toy/")
        assert len(problem["samples"]) == 2
        for sample in problem["samples"]:
            assert 1 <= len(sample["turns"]) <= 3
            assert set(sample["turns"][0]) == {"valid_code", "public_passed", "repeated"}
            assert not sample["turns"][0]["repeated"]
            assert isinstance(sample["passed"], bool)
        per_problem.append(sum(s["passed"] for s in problem["samples"]) / 2)
    metrics = result["metrics"]
    assert metrics["1@3"] == pytest.approx(sum(per_problem) / 3)
    low, high = metrics["1@3_ci95"]
    assert 0 <= low <= metrics["1@3"] <= high <= 1
    assert 0 <= metrics["10@6"] <= 1
    samples = [sample for problem in problems for sample in problem["samples"]]
    assert metrics["1@3_overflow"] == pytest.approx(
        sum(s["overflow"] for s in samples) / len(samples)
    )
    # 1@3 by family: each family's problems' mean, from the same samples.
    by_family = {}
    for problem, score in zip(problems, per_problem, strict=True):
        by_family.setdefault(problem["name"].split("/")[1], []).append(score)
    assert result["1@3_by_family"] == {
        family: {"1@3": pytest.approx(sum(xs) / len(xs)), "problems": len(xs)}
        for family, xs in by_family.items()
    }
    assert "1@3 by family:" in printed
    for family in by_family:
        assert f"    {family} " in printed


def test_a_missing_model_says_what_to_do(capsys):
    assert main(["model.path=/nonexistent/model"]) == 2
    assert "python -m launch.prepare_tiny" in capsys.readouterr().err


def test_a_typo_names_the_key(capsys):
    assert main(["eval.rollout=3"]) == 2
    assert "eval.rollout" in capsys.readouterr().err
