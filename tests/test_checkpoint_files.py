"""Checkpoint folders: invisible until complete, `latest` always names a whole one."""

import pytest

from learner import checkpoint


def test_a_partial_checkpoint_is_never_the_latest(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    partial = checkpoint.partial_dir(tmp_path, 1)
    (partial / "weights").write_text("half written")
    assert checkpoint.latest(tmp_path) is None  # a crash here leaves nothing that looks valid
    final = checkpoint.commit(tmp_path, 1, {"position": 7}, keep=2)
    assert checkpoint.latest(tmp_path) == final == tmp_path / "iter-000001"
    assert checkpoint.read_state(final) == {"position": 7}
    assert not partial.exists()
    checkpoint.partial_dir(tmp_path, 2)
    assert checkpoint.latest(tmp_path) == final


def test_old_checkpoints_beyond_keep_are_removed(tmp_path):
    for iteration in range(1, 5):
        checkpoint.partial_dir(tmp_path, iteration)
        checkpoint.commit(tmp_path, iteration, {}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("iter-*")) == ["iter-000003", "iter-000004"]


def test_a_latest_pointing_at_an_incomplete_folder_is_an_error(tmp_path):
    (tmp_path / "iter-000003").mkdir()
    (tmp_path / "latest").write_text("iter-000003")
    with pytest.raises(checkpoint.CheckpointError, match="not a complete checkpoint"):
        checkpoint.latest(tmp_path)
