"""Rollouts stream to the learner: each rank prepares a chunk as soon as it is in, fetches
only its share, and the updates are bit for bit those of an iteration handed over whole;
an update with no reply to train on is named; the training driver never deserializes a
rollout."""

import subprocess
import sys
import threading
import time

import pytest
import torch
from fixtures import synthetic_rollouts
from train_app import small_run_overrides

from engines.rollout import StoredRollout
from learner.config import LearnerConfig

ray = pytest.importorskip("ray")
from actors.replay_queue import ReplayQueueActor  # noqa: E402
from learner.group import LearnerGroup, store_rollouts  # noqa: E402
from learner.rank import NoReplyToTrain  # noqa: E402

VOCAB = 1024
CHUNK = 4
COUNT = 16


def _config() -> LearnerConfig:
    return LearnerConfig(
        num_ranks=2,
        updates_per_iteration=2,
        micro_batch_tokens=160,
        lr=1e-4,
        value_lr=3e-4,
        warmup_steps=2,
    )


def _trickle(queue, stored: list[StoredRollout]) -> None:
    """Put the chunks in a scrambled order, each only once the learner has read the ones
    before: every chunk but the last is in before the next comes."""
    order = [2, 0, 3, 1]
    for position, chunk in enumerate(order):
        ray.get(queue.put.remote(0, stored[chunk * CHUNK : (chunk + 1) * CHUNK]))
        while ray.get(queue.stats.remote()).taken < (position + 1) * CHUNK:
            time.sleep(0.05)


def test_streamed_chunks_train_bit_for_bit_as_a_whole_iteration(local_ray, quick_tiny_model):
    from engines.generation import ModelConfig

    rollouts = synthetic_rollouts(COUNT, seed=3, vocab_size=VOCAB)
    model = ModelConfig(path=str(quick_tiny_model))
    results = {}
    for mode in ("whole", "streamed"):
        group = LearnerGroup(_config(), model)
        try:
            stored = store_rollouts(rollouts, 1, CHUNK)
            if mode == "whole":
                metrics = group.train_from(stored, 1, COUNT)
            else:
                queue = ReplayQueueActor.remote(COUNT, 0)
                feeder = threading.Thread(target=_trickle, args=(queue, stored))
                feeder.start()
                metrics = group.train_from(queue, 1, COUNT)
                feeder.join()
            results[mode] = metrics, group.parameters()
            if mode == "streamed":  # the same group, for what a part without replies does
                _check_updates_without_a_reply(group)
        finally:
            group.shutdown()
    (whole, whole_params), (streamed, streamed_params) = results["whole"], results["streamed"]
    for rank in range(2):
        for model_name in ("policy", "value"):
            before, after = whole_params[rank][model_name], streamed_params[rank][model_name]
            assert before.keys() == after.keys()
            assert all(torch.equal(before[k], after[k]) for k in before), model_name
    for name in ("reward_mean", "kl_ref", "kl_ref_stderr", "padding_fraction"):
        assert whole[name] == streamed[name], name
    assert whole["updates"][0]["policy_loss"] == streamed["updates"][0]["policy_loss"]
    # Streamed, the rank had prepared chunks before the last came (three when it keeps
    # pace; fewer on a loaded machine, where chunks that come while it prepares one are
    # read together); its own share only.
    assert 1 <= streamed["chunks_prepared_before_last"] <= 3
    assert whole["chunks_prepared_before_last"] == 0
    assert streamed["fetched"] < COUNT and whole["fetched"] < COUNT


def _check_updates_without_a_reply(group) -> None:
    """An update whose share of rollouts has none with a reply is named; one with some is
    trained on those."""
    from engines.rollout import Rollout

    played = synthetic_rollouts(4, seed=0, vocab_size=VOCAB)
    empty = [Rollout(f"long{i}", [5] * 40, [0] * 40, [0.0] * 40, overflow=True) for i in range(4)]
    # With half the rollouts without a reply, every update still has some: trained.
    metrics = group.train([*played, *empty], iteration=2)
    assert metrics["tokens"] == sum(len(r.token_ids) for r in played)
    with pytest.raises(NoReplyToTrain):
        group.train(empty, iteration=3)


DRIVER = """
import pickle, sys
from engines.rollout import Rollout
import launch.train

seen = []
Rollout.__setstate__ = lambda self, state: (seen.append(1), self.__dict__.update(state))
pickle.loads(pickle.dumps(Rollout("p", [1], [0], [0.0])))
assert seen == [1], "the counter does not see a rollout unpickled"
seen.clear()
sys.argv = ["launch.train", *sys.argv[1:]]
try:
    launch.train.main()
finally:
    print(f"rollouts deserialized by the driver: {len(seen)}", flush=True)
"""


def test_the_training_driver_never_deserializes_a_rollout(quick_tiny_model, tmp_path):
    import pyarrow.parquet as pq

    overrides = [
        *small_run_overrides(quick_tiny_model, tmp_path),
        "+experiment=sync",
        "trainer.iterations=1",
        "trainer.rollouts_per_iteration=8",
        "dialog.sampling.max_new_tokens=32",
        "eval.problems=2",
        "eval.rollouts=1",
        "run.report=false",
    ]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *overrides], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rollouts deserialized by the driver: 0" in done.stdout
    # What the driver never held is in the run folder all the same.
    rows = pq.read_table(tmp_path / "rollouts" / "iter-000001.parquet").to_pylist()
    assert len(rows) == 8
    assert (tmp_path / "rollouts" / "eval-000001.parquet").exists()
