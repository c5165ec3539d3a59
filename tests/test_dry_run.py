"""`python -m launch.train ... dry_run=true`: the plan of the paper's layouts, printed
without starting anything, with DeepSpeed's own memory figures; and the plan's
arithmetic, worked by hand."""

import re
import subprocess
import sys
import time

import pytest
from torch import nn

from engines.generation import ModelConfig
from launch import plan

PAPER_RUNS = {"8b": ["+experiment=paper_8b"], "70b": ["+experiment=paper_70b"]}
"""How the README spells the paper's runs (one preset each, conf/experiment/paper_*.yaml)."""
GIB = 2**30


def _dry_run(overrides: list[str], out) -> tuple[subprocess.CompletedProcess, float]:
    """The real app with `dry_run=true`, its run folder and Hydra's folder under `out`;
    (the finished process, seconds it took)."""
    command = [
        sys.executable,
        "-m",
        "launch.train",
        *overrides,
        "dry_run=true",
        f"run.dir={out / 'run'}",
        f"hydra.run.dir={out / 'hydra'}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, time.perf_counter() - started


@pytest.fixture(scope="module", params=sorted(PAPER_RUNS))
def paper(request, tmp_path_factory):
    """(size, stdout, seconds, folder, stderr) of one paper layout's dry run."""
    out = tmp_path_factory.mktemp(f"dry-run-{request.param}")
    done, seconds = _dry_run(PAPER_RUNS[request.param], out)
    return request.param, done.stdout, seconds, out, done.stderr


def _number(pattern: str, text: str) -> float:
    """The number `pattern`'s group matches in `text` (thousands separators dropped)."""
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{pattern!r} not in:\n{text}"
    return float(match.group(1).replace(",", ""))


def test_the_paper_layouts_gpu_counts(paper):
    size, stdout, *_ = paper
    learner, inference, total = {"8b": (128, 160, 288), "70b": (1024, 1280, 2304)}[size]
    assert _number(r"^  learner +(\d+) GPUs", stdout) == learner
    assert _number(r"^  inference +(\d+) GPUs", stdout) == inference
    assert _number(r"^  total +(\d+) GPUs", stdout) == total
    assert _number(r"tensor parallel (\d+)\)", stdout) == {"8b": 1, "70b": 8}[size]
    assert f"{total} H100s ({learner} training + {inference} inference)" in stdout
    # Each kind of actor on the nodes of its role, as Ray places them: by custom resource.
    assert (
        "  nodes      learner on `rlef_learner`, inference on `rlef_inference`, sandbox on "
        "`rlef_sandbox`" in stdout
    )


def test_parameter_counts_are_llama_3_1s(paper):
    size, stdout, *_ = paper
    published = {"8b": 8.03e9, "70b": 70.6e9}[size]
    params = _number(r"^  policy +([\d,]+) parameters", stdout)
    assert abs(params - published) / published < 0.01


def test_model_states_are_deepspeeds_estimate(paper):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    size, stdout, *_ = paper
    ranks, tensor_parallel = {"8b": (128, 1), "70b": (1024, 8)}[size]
    nodes = {"num_gpus_per_node": 8, "num_nodes": ranks // 8, "cpu_offload": False}
    policy = int(_number(r"^  policy +([\d,]+) parameters", stdout))
    policy_layer = int(_number(r"^  policy .* largest layer ([\d,]+)", stdout))
    value = int(_number(r"^  value +([\d,]+) parameters", stdout))
    value_layer = int(_number(r"^  value .* largest layer ([\d,]+)", stdout))
    if size == "8b":
        expected = [
            estimate_zero2_model_states_mem_needs(policy, **nodes)[1],
            estimate_zero2_model_states_mem_needs(value, **nodes)[1],
            2 * policy,  # bf16 reference, whole on every rank under ZeRO-2
        ]
    else:
        expected = [
            estimate_zero3_model_states_mem_needs(policy, policy_layer, **nodes)[1],
            estimate_zero3_model_states_mem_needs(value, value_layer, **nodes)[1],
            2 * policy // ranks,  # bf16 reference, sharded under ZeRO-3
        ]
    for name, bytes_ in zip(
        ("policy", "value", "reference", "sum"), [*expected, sum(expected)], strict=True
    ):
        printed = re.search(rf"^  {name} +([\d.]+) GiB", stdout, re.MULTILINE).group(1)
        assert printed == f"{bytes_ / GIB:.2f}", name
    weights = re.search(r"weights per inference GPU: ([\d.]+) GiB", stdout).group(1)
    assert weights == f"{2 * policy / tensor_parallel / GIB:.2f}"


def test_the_paper_dialog_holds_three_turns_and_its_kv_cache_is_counted(paper):
    size, stdout, *_ = paper
    assert (
        "dialog: up to 8,192 tokens (dialog.max_model_len; the model's context is 131,072), "
        "3 replies of up to 1,024 (dialog.sampling.max_new_tokens); first prompts over "
        "7,168 tokens are dropped from training"
    ) in stdout
    # Llama 3.1 (8B and 70B alike: 8 key/value heads of 128) in bf16: 2 x layers x 8 x 128
    # x 2 bytes per token; chunks of 4 dialogs in 2 pipeline groups: 2 at once.
    layers = {"8b": 32, "70b": 80}[size]
    per_dialog = 2 * layers * 8 * 128 * 2 * 8192
    assert _number(r"KV cache ([\d.]+) GiB per dialog", stdout) == round(per_dialog / GIB, 2)
    assert "2 at once per engine (chunks of 4 in 2 pipeline groups): " in stdout
    assert _number(r"pipeline groups\): ([\d.]+) GiB", stdout) == round(2 * per_dialog / GIB, 2)


def test_a_dry_run_starts_nothing_and_writes_no_run_folder(paper):
    _, stdout, seconds, out, stderr = paper
    assert seconds < 60
    assert "nothing started" in stdout
    assert "Ray" not in stdout + stderr  # no "Started a local Ray instance", no ray.init
    assert not (out / "run").exists()
    # Hydra makes its own folder before the app runs; the app adds nothing to it.
    assert sorted(p.name for p in (out / "hydra").iterdir()) == [".hydra", "train.log"]


def test_the_local_layout_plans_cpus(tmp_path):
    done, _ = _dry_run([], tmp_path)
    assert _number(r"^  total +(\d+) GPUs", done.stdout) == 0
    assert "CPU only" in done.stdout and "2 ranks on CPU" in done.stdout
    assert "  nodes      any node with room (no node roles" in done.stdout
    # The tiny Llama in float32: 2 x 4 layers x 4 heads x 64 x 4 bytes x 2048 tokens = 16 MiB.
    assert "dialog: up to 2,048 tokens (dialog.max_model_len; the model's context is 2,048)" in (
        done.stdout
    )
    assert "KV cache 0.02 GiB per dialog" in done.stdout
    assert "(engine.kv_cache_gib=1)" in done.stdout
    assert not (tmp_path / "run").exists()


def test_tokens_and_time_worked_by_hand():
    # 1024 dialogs x 2.5 turns: 200 reply tokens generated, 400 + 200 trained per turn.
    assert plan.iteration_tokens(1024, 2.5, 400, 200) == (512_000, 1_536_000)
    # Chunks of 16: 64 chunks; 1000 rollouts: 62.5 -> 63 chunks; chunks of 4: all 160.
    assert plan.busy_engines(1024, 16, 160) == 64
    assert plan.busy_engines(1000, 16, 160) == 63
    assert plan.busy_engines(1024, 4, 160) == 160
    assert plan.generate_seconds(512_000, 64, 1000) == pytest.approx(8.0, rel=1e-9)
    # 2 + 2/3 passes: 1_536_000 x 8/3 / (128 x 6000) = 16/3 s.
    assert plan.train_seconds(1_536_000, 128, 6000) == pytest.approx(16 / 3, rel=1e-9)
    assert plan.sync_seconds(16e9, 20) == pytest.approx(0.8, rel=1e-9)
    assert plan.iteration_seconds(8.0, 6.0, 0.8, "sync") == pytest.approx(14.8, rel=1e-9)
    assert plan.iteration_seconds(8.0, 6.0, 0.8, "async") == pytest.approx(8.8, rel=1e-9)
    assert plan.iteration_seconds(5.0, 6.0, 0.8, "async") == pytest.approx(6.8, rel=1e-9)


def test_placement_worked_by_hand():
    eight = plan.placement(128, True, 160, 1, 8)
    assert (eight.learner_gpus, eight.inference_gpus, eight.total_gpus) == (128, 160, 288)
    assert (eight.learner_nodes, eight.inference_nodes) == (16, 20)
    odd = plan.placement(12, True, 3, 8, 8)
    assert (odd.total_gpus, odd.learner_nodes, odd.inference_nodes) == (36, 2, 3)
    cpu = plan.placement(2, False, 1, 0, 8)
    assert (cpu.total_gpus, cpu.learner_nodes, cpu.inference_nodes) == (0, 0, 0)


def test_learner_memory_worked_by_hand():
    size = plan.ModelSize(1000, 100, 900, 90, source="by hand")
    # ZeRO-2 over 4 ranks: 2 P + 18 P / 4 each; the reference 2 P whole.
    zero2 = plan.learner_memory(size, ranks=4, zero_stage=2, reference_bytes=2)
    assert (zero2.policy, zero2.value, zero2.reference) == (6500, 5850, 2000)
    assert zero2.total == 14350
    # ZeRO-3: 4 x largest layer + 18 P / 4 each; the reference 2 P / 4.
    zero3 = plan.learner_memory(size, ranks=4, zero_stage=3, reference_bytes=2)
    assert (zero3.policy, zero3.value, zero3.reference) == (4900, 4410, 500)
    assert zero3.total == 9810
    assert plan.learner_memory(size, ranks=4, zero_stage=1, reference_bytes=2) is None


def test_parameters_shared_between_modules_count_once():
    shared = nn.Linear(4, 3)  # 15 parameters
    module = nn.Sequential(shared, nn.Linear(3, 3, bias=False), shared)  # + 9
    assert plan.count_parameters(module) == (24, 15)


def test_a_model_without_folder_or_architecture_is_not_sized():
    assert plan.model_size(ModelConfig(path="no/such-model")) is None
