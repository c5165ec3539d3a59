"""Per-request sampling seeds: no two requests of a run share one."""

import pytest

from actors.seeds import SEED_BITS, EpisodeSeeds, request_seed


def test_the_seeds_of_a_run_are_pairwise_distinct():
    # The requests of a paper-shaped run, scaled down: 20 iterations of 1024 episodes of up
    # to 3 turns, with an evaluation of 400 episodes before training and every 5 iterations.
    seeds = [
        EpisodeSeeds(0, "train", iteration).seed(episode, turn)
        for iteration in range(1, 21)
        for episode in range(1024)
        for turn in range(3)
    ]
    seeds += [
        EpisodeSeeds(0, "eval", iteration).seed(episode, turn)
        for iteration in range(0, 21, 5)
        for episode in range(400)
        for turn in range(3)
    ]
    assert len(seeds) == 20 * 1024 * 3 + 5 * 400 * 3
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= seed < 2**SEED_BITS for seed in seeds)


def test_a_seed_names_its_request_whichever_part_of_the_batch_plays_it():
    whole = EpisodeSeeds(7, "train", 3)
    chunk = whole.from_episode(128)
    assert chunk.seed(5, 2) == whole.seed(133, 2) == request_seed(7, "train", 3, 133, 2)
    assert chunk.from_episode(2).first_episode == 130


def test_keys_that_a_sum_of_their_parts_would_merge_get_different_seeds():
    # The old `base + iteration + episode + 1000 x turn`: iteration 2's episode 0 was
    # iteration 1's episode 1, and episode 1000 of turn 0 was episode 0 of turn 1.
    assert request_seed(0, "train", 2, 0, 0) != request_seed(0, "train", 1, 1, 0)
    assert request_seed(0, "train", 1, 1000, 0) != request_seed(0, "train", 1, 0, 1)
    # Each part of the key counts: run seed, phase, iteration, episode, turn.
    keys = [
        (0, "train", 1, 0, 0),
        (1, "train", 1, 0, 0),
        (0, "eval", 1, 0, 0),
        (0, "bench", 1, 0, 0),
        (0, "train", 0, 0, 0),
        (0, "train", 1, 1, 0),
        (0, "train", 1, 0, 1),
    ]
    assert len({request_seed(*key) for key in keys}) == len(keys)


def test_an_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="phase 'warmup'"):
        EpisodeSeeds(0, "warmup", 0)
