"""`python -m launch.evaluate`: the real engine and sandbox; metrics recomputed from samples."""

import json

import pytest

from launch.evaluate import main


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
            assert set(sample["turns"][0]) == {"valid_code", "public_passed"}
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
