"""Every config in conf/ composes into its dataclass, with every group option and every
experiment; the paper presets equal the long commands they replace; a cluster file sets
the cluster only; a typo in an override names the key."""

from dataclasses import fields
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from launch.config import CONF_DIR, ConfigError, compose_config
from launch.train_config import ClusterConfig, TrainConfig

GROUPS = [p.name for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != "experiment"]
EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
CLUSTERS = sorted(p.stem for p in (Path(CONF_DIR) / "cluster").glob("*.yaml"))

PAPER_PRESETS = {
    "paper_8b": [
        "model=llama3.1-8b-instruct",
        "data=code_contests",
        "engine=gpu",
        "learner=paper",
        "actors=paper",
        "trainer=paper",
        "cluster=paper_8b",
        "dialog.max_model_len=8192",
        "dialog.sampling.max_new_tokens=1024",
        "sandbox.workers=16",
    ],
    "paper_70b": [
        "model=llama3.1-70b-instruct",
        "data=code_contests",
        "engine=gpu",
        "learner=paper_70b",
        "actors=paper",
        "trainer=paper",
        "cluster=paper_70b",
        "engine.tensor_parallel_size=8",
        "dialog.max_model_len=8192",
        "dialog.sampling.max_new_tokens=1024",
        "sandbox.workers=16",
    ],
}
"""The long command each `+experiment=` preset replaces: its seven groups, then the run's
own keys."""


def _compose(overrides: list[str]) -> DictConfig:
    import launch.train  # noqa: F401  registers the schema

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=["run.dir=/tmp/unused", *overrides])


def _train(overrides: list[str]) -> TrainConfig:
    return OmegaConf.to_object(_compose(overrides))


def _resolved(overrides: list[str]) -> dict:
    """The whole config as plain containers, every interpolation resolved."""
    return OmegaConf.to_container(_compose(overrides), resolve=True)


@pytest.mark.parametrize(
    "group,option",
    [(g, p.stem) for g in GROUPS for p in sorted((Path(CONF_DIR) / g).glob("*.yaml"))],
)
def test_every_group_option_composes_into_the_train_config(group, option):
    config = _train([f"{group}={option}"])
    assert isinstance(config, TrainConfig)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_names_itself(experiment):
    config = _train([f"+experiment={experiment}"])
    assert config.experiment == experiment


def test_experiments_change_what_they_say():
    assert _train(["+experiment=single_turn"]).dialog.max_turns == 1
    assert _train(["+experiment=random_feedback"]).dialog.feedback == "random"
    assert _train(["+experiment=no_feedback"]).dialog.feedback == "none"
    assert _train(["+experiment=private_feedback"]).dialog.feedback_tests == "private"
    assert _train(["+experiment=async"]).trainer.schedule == "async"


def test_the_paper_runs():
    eight = _train(["+experiment=paper_8b"])
    assert (eight.learner.num_ranks, eight.actors.num_inference) == (128, 160)
    assert (eight.learner.lr, eight.trainer.rollouts_per_iteration) == (2e-7, 1024)
    assert eight.learner.updates_per_iteration == 4
    assert eight.model.path == "meta-llama/Llama-3.1-8B-Instruct"
    seventy = _train(["+experiment=paper_70b"])
    assert seventy.learner.num_ranks == 1024 and seventy.learner.zero_stage == 3
    assert seventy.engine.tensor_parallel_size == seventy.actors.gpus_per_inference == 8
    assert seventy.actors.num_inference * seventy.actors.gpus_per_inference == 1280
    assert seventy.learner.lr == 2e-7 and seventy.model.path == "meta-llama/Llama-3.1-70B-Instruct"


@pytest.mark.parametrize("preset", sorted(PAPER_PRESETS))
def test_a_paper_preset_is_the_long_command_it_replaces(preset):
    """The preset must equal the long command: the whole resolved configs are compared,
    all but the `experiment` key, which names the preset."""
    short = _resolved([f"+experiment={preset}"])
    long = _resolved(PAPER_PRESETS[preset])
    assert (short.pop("experiment"), long.pop("experiment")) == (preset, "default")
    assert short == long
    # The preset's header spells the same long command.
    header = (Path(CONF_DIR) / "experiment" / f"{preset}.yaml").read_text().split("defaults:")[0]
    words = " ".join(line.lstrip("#").rstrip("\\") for line in header.splitlines()).split()
    assert " ".join(["python -m launch.train", *PAPER_PRESETS[preset]]) in " ".join(words)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_cluster_file_sets_the_cluster_only(cluster):
    path = Path(CONF_DIR) / "cluster" / f"{cluster}.yaml"
    # No `# @package` line: its keys are `cluster.*` and cannot reach another group.
    assert "@package" not in path.read_text()
    assert set(OmegaConf.load(path)) <= {f.name for f in fields(ClusterConfig)}
    default, chosen = _resolved([]), _resolved([f"cluster={cluster}"])
    assert [key for key in default if default[key] != chosen[key]] in ([], ["cluster"])


def test_the_paper_cluster_alone_keeps_the_tiny_learner_and_actors():
    # Once cluster=paper_8b also set learner.* and actors.*: alone, it trained 128 ranks
    # at the tiny learning rate.
    tiny, on_paper_cluster = _train([]), _train(["cluster=paper_8b"])
    assert on_paper_cluster.cluster.name == "paper_8b"
    assert on_paper_cluster.learner == tiny.learner and on_paper_cluster.actors == tiny.actors
    assert (on_paper_cluster.learner.num_ranks, on_paper_cluster.learner.lr) == (2, 3e-4)
    assert on_paper_cluster.dialog == tiny.dialog and on_paper_cluster.engine == tiny.engine


@pytest.mark.parametrize("name", ["evaluate", "validate_data", "prepare_tiny"])
def test_the_other_entry_points_compose(name):
    from launch.evaluate import EvaluateConfig
    from launch.prepare_tiny import TinyModelConfig
    from launch.validate_data import ValidateDataConfig

    schema = {
        "evaluate": EvaluateConfig,
        "validate_data": ValidateDataConfig,
        "prepare_tiny": TinyModelConfig,
    }[name]
    assert isinstance(compose_config(name, [], schema), schema)


def test_the_tiny_learning_rate_decays_until_the_runs_last_update():
    tiny = _train(["trainer.iterations=7"])
    assert tiny.learner.lr_decay_steps == 7 * tiny.learner.updates_per_iteration
    longer = _train(["trainer.iterations=40", "learner.updates_per_iteration=3"])
    assert longer.learner.lr_decay_steps == 120
    assert _train(["learner=paper"]).learner.lr_decay_steps == 0


def test_a_typo_names_the_key():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="lrr"):
        _train(["learner.lrr=1"])


@pytest.mark.parametrize("override", ["temperature=0.7", "top_p=0.9"])
def test_training_samples_at_temperature_one_without_top_p(quick_tiny_model, override):
    from launch.train import check_config

    model = f"model.path={quick_tiny_model}"
    check_config(_train([model]))
    wrong = _train([model, f"dialog.sampling.{override}"])
    with pytest.raises(ConfigError, match="dialog.sampling.temperature and dialog.sampling.top_p"):
        check_config(wrong)


def test_the_engine_takes_the_dialogs_length():
    assert _train([]).engine.max_model_len == 2048
    assert _train(["dialog.max_model_len=1536"]).engine.max_model_len == 1536


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("engine.max_model_len=1024", "engine.max_model_len=1024 is shorter than"),
        ("dialog.max_model_len=4096", "longer than the model's context (2048 tokens"),
        ("learner.micro_batch_tokens=1024", "learner.micro_batch_tokens=1024 cannot hold"),
        ("engine.kv_cache_gib=0", "engine.kv_cache_gib=0 cannot hold one dialog"),
        ("dialog.sampling.max_new_tokens=2048", "leaves no room for a prompt"),
        ("dialog.sampling.max_new_tokens=0", "dialog.sampling.max_new_tokens must be >= 1"),
    ],
)
def test_a_dialog_that_cannot_be_played_or_trained_is_refused(override, message):
    from launch.train import check_config

    config = _train([override])  # the shipped tiny model: a context of 2048 tokens
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        check_config(config)


def test_cpu_reservations_scaled_to_fit_a_smaller_cluster():
    from launch.train_config import cpu_reservations, cpus_reserved, with_cpus_scaled

    config = _train(["actors.num_sandbox=1", "actors.cpus_per_sandbox=0.5"])
    # 2 learner ranks x 1 + 1 inference actor x 1 + 1 sandbox actor x 0.5
    assert cpu_reservations(config) == {
        "learner": (2, 1),
        "inference": (1, 1),
        "sandbox": (1, 0.5),
    }
    assert cpus_reserved(config) == 3.5
    scaled = with_cpus_scaled(config, 2 / 3.5)
    assert cpus_reserved(scaled) <= 2 < cpus_reserved(scaled) + 1e-3
    assert scaled.learner.cpus_per_rank == 0.5714 and scaled.actors.cpus_per_sandbox == 0.2857
    assert config.learner.cpus_per_rank == 1  # the original is left as it was


@pytest.mark.parametrize(
    "entry, override, message",
    [
        ("train", "dialog.max_turns=0", "dialog.max_turns must be at least 1, got 0"),
        ("train", "dialog.feedback=loud", "dialog.feedback 'loud' is not one of"),
        ("train", "learner.zero_stage=5", "learner.zero_stage must be 0-3, got 5"),
        ("train", "chaos.targets=[driver]", "chaos.targets: ['driver'] not among"),
        ("train", "sandbox.workers=0", "sandbox.workers must be positive, got 0"),
        ("train", "cluster.learner_resource=GPU", "cluster.learner_resource must name a"),
        ("evaluate", "engine.backend=tgi", "engine.backend 'tgi' is not one of vllm, hf"),
    ],
)
def test_a_bad_value_in_any_group_is_one_line_and_exit_2(entry, override, message):
    """Each config checks itself as it is made, inside the entry point: no traceback."""
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            f"launch.{entry}",
            override,
            *(["dry_run=true"] * (entry == "train")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{entry}: error: "), done.stderr[-2000:]
    assert message in lines[0]


def test_the_rehearsal_is_the_paper_shape_scaled_to_this_machine():
    rehearsal, paper = _train(["+experiment=rehearsal"]), _train(["+experiment=paper_8b"])
    assert rehearsal.learner.transport == paper.learner.transport == "distributed"
    assert rehearsal.learner.num_ranks >= 2
    assert rehearsal.actors.num_inference >= 2 and rehearsal.actors.num_sandbox >= 2
    assert rehearsal.trainer.schedule == paper.trainer.schedule
    assert rehearsal.data.source == paper.data.source == "code_contests"
    assert (Path(CONF_DIR).parent / rehearsal.data.path).is_dir()
    for role in ("learner", "inference", "sandbox"):
        resource = f"{role}_resource"
        assert getattr(rehearsal.cluster, resource) == getattr(paper.cluster, resource)
    assert rehearsal.dialog.max_turns == paper.dialog.max_turns == 3
    budget = [c.dialog.max_model_len / c.dialog.sampling.max_new_tokens for c in (rehearsal, paper)]
    assert budget[0] == budget[1]
    assert rehearsal.run.checkpoint_every == 1  # a learner drill replays one iteration
