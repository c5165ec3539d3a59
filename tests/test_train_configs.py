"""Every config in conf/ composes into its dataclass, with every group option and every
experiment; a typo in an override names the key."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from launch.config import CONF_DIR, ConfigError, compose_config
from launch.train_config import TrainConfig

GROUPS = [p.name for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != "experiment"]
EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


def _train(overrides: list[str]) -> TrainConfig:
    import launch.train  # noqa: F401  registers the schema

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose(config_name="train", overrides=["run.dir=/tmp/unused", *overrides])
    return OmegaConf.to_object(config)


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


def test_the_paper_layouts():
    eight = _train(["cluster=paper_8b", "model=llama3.1-8b-instruct", "engine=gpu"])
    assert (eight.learner.num_ranks, eight.actors.num_inference) == (128, 160)
    seventy = _train(["cluster=paper_70b", "model=llama3.1-70b-instruct", "engine=gpu"])
    assert seventy.learner.num_ranks == 1024 and seventy.learner.zero_stage == 3
    assert seventy.actors.num_inference * seventy.engine.tensor_parallel_size == 1280
    paper = _train(["learner=paper", "trainer=paper"])
    assert (paper.learner.lr, paper.trainer.rollouts_per_iteration) == (2e-7, 1024)
    assert paper.learner.updates_per_iteration == 4


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
