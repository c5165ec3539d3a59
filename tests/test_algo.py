"""The RLEF objective against numbers worked out by hand (rtol 1e-6), and the vectorised
functions against plain loops."""

import math

import torch

from learner.algo import (
    clipped_value_loss,
    k3_kl,
    per_turn_kl,
    per_turn_mean,
    ppo_policy_loss,
    ratio_standard_error,
    returns_to_go,
    targets,
    turn_advantages,
    turn_rewards,
)

RTOL = 1e-6


def close(got, want):
    return torch.allclose(
        torch.as_tensor(got, dtype=torch.float64),
        torch.tensor(want, dtype=torch.float64),
        rtol=RTOL,
        atol=1e-12,
    )


# Two episodes. Episode 0: turn 0 has no valid code, turn 1 passes everything.
# Episode 1: three turns with code, the final program fails.
TURN_OF_TOKEN = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4])
EPISODE_OF_TURN = torch.tensor([0, 0, 1, 1, 1])
POLICY = torch.tensor([-1.0, -2.0, -0.5, -0.5, -0.2, -1.0, -0.1, -0.3, -2.0], dtype=torch.float64)
REFERENCE = torch.tensor(
    [-1.5, -1.0, -0.7, -0.3, -0.2, -1.4, -0.2, -0.1, -1.0], dtype=torch.float64
)


def test_per_turn_kl_is_the_mean_not_the_sum():
    # turn 0: (0.5 - 1.0) / 2; turn 1: (0.2 - 0.2 + 0) / 3; turn 2: 0.4;
    # turn 3: (0.1 - 0.2) / 2; turn 4: -1.0
    kl = per_turn_kl(POLICY, REFERENCE, TURN_OF_TOKEN, 5)
    assert close(kl, [-0.25, 0.0, 0.4, -0.05, -1.0])


def test_rewards_returns_and_advantages_by_hand():
    kl = torch.tensor([-0.25, 0.0, 0.4, -0.05, -1.0], dtype=torch.float64)
    valid = torch.tensor([False, True, True, True, True])
    last = torch.tensor([False, True, False, False, True])
    passed = torch.tensor([True, True, False, False, False])
    rewards = turn_rewards(valid, last, passed, kl, beta=0.05)
    # R0 = -0.2 - 0.05 * -0.25; R1 = +1 - 0; R2 = -0.05 * 0.4; R3 = -0.05 * -0.05;
    # R4 = -1 - 0.05 * -1.0
    assert close(rewards, [-0.1875, 1.0, -0.02, 0.0025, -0.95])
    returns = returns_to_go(rewards, EPISODE_OF_TURN)
    # Episode 0: G0 = -0.1875 + 1, G1 = 1. Episode 1: G2 = -0.02 + 0.0025 - 0.95, ...
    assert close(returns, [0.8125, 1.0, -0.9675, -0.9475, -0.95])
    values = torch.tensor([0.5, 0.9, -0.5, -0.6, -1.2], dtype=torch.float64)
    assert close(turn_advantages(returns, values), [0.3125, 0.1, -0.4675, -0.3475, 0.25])


def test_targets_go_from_the_kl_to_the_advantages_at_each_value_point():
    """The hand-worked numbers above, in one call: the KL of POLICY to REFERENCE, the
    rewards, the returns; advantages at turn level, and at token level (a point per token)."""
    valid = torch.tensor([False, True, True, True, True])
    last = torch.tensor([False, True, False, False, True])
    passed = torch.tensor([True, True, False, False, False])
    values = torch.tensor([0.5, 0.9, -0.5, -0.6, -1.2], dtype=torch.float64)
    episode = (TURN_OF_TOKEN, EPISODE_OF_TURN, valid, last, passed)
    returns, advantages = targets(POLICY, REFERENCE, *episode, values, torch.arange(5), beta=0.05)
    assert close(returns, [0.8125, 1.0, -0.9675, -0.9475, -0.95])
    assert close(advantages, [0.3125, 0.1, -0.4675, -0.3475, 0.25])
    zero = torch.zeros(9, dtype=torch.float64)
    _, by_token = targets(POLICY, REFERENCE, *episode, zero, TURN_OF_TOKEN, beta=0.05)
    assert close(by_token, returns[TURN_OF_TOKEN].tolist())


def test_ppo_loss_and_clip_fraction_by_hand():
    behaviour = torch.zeros(3, dtype=torch.float64)
    logprobs = torch.log(torch.tensor([1.5, 0.9, 0.5], dtype=torch.float64))
    advantages = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    loss, clip_fraction = ppo_policy_loss(logprobs, behaviour, advantages, clip_eps=0.2)
    # ratio 1.5, A=1: max(-1.5, -1.2) = -1.2 (clipped); ratio 0.9: -0.9 (inside the clip);
    # ratio 0.5, A=-1: max(0.5, 0.8) = 0.8 (clipped). Mean: -1.3 / 3.
    assert close(loss, -1.3 / 3)
    assert close(clip_fraction, 2 / 3)


def test_ppo_gradient_vanishes_where_the_ratio_is_clipped():
    logprobs = torch.log(torch.tensor([1.5, 0.9], dtype=torch.float64)).requires_grad_()
    loss, _ = ppo_policy_loss(
        logprobs, torch.zeros(2, dtype=torch.float64), torch.tensor([1.0, 1.0], dtype=torch.float64)
    )
    loss.backward()
    # d/dlogp of -A * exp(logp) / 2 = -0.9 / 2 for the unclipped token, 0 for the clipped one.
    assert close(logprobs.grad, [0.0, -0.45])


def test_clipped_value_loss_clips_the_value_not_the_loss():
    values = torch.tensor([1.0, 0.0], dtype=torch.float64)
    old = torch.tensor([0.5, 0.1], dtype=torch.float64)
    returns = torch.tensor([0.8, -1.0], dtype=torch.float64)
    # V_clip = [0.5 + 0.2, 0.1 - 0.1] = [0.7, 0.0]; squared errors: max(0.04, 0.01) = 0.04,
    # max(1, 1) = 1. Loss = 0.5 * (0.04 + 1) / 2.
    assert close(clipped_value_loss(values, old, returns, value_clip=0.2), 0.26)


def _loop_returns(rewards, episodes):
    out = []
    for t in range(len(rewards)):
        out.append(sum(rewards[i] for i in range(t, len(rewards)) if episodes[i] == episodes[t]))
    return out


def _loop_means(values, segments, count):
    out = []
    for s in range(count):
        members = [v for v, g in zip(values, segments, strict=True) if g == s]
        out.append(sum(members) / len(members) if members else 0.0)
    return out


def test_vectorised_functions_match_plain_loops():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        turns_per_episode = torch.randint(1, 4, (6,), generator=generator).tolist()
        episode_of_turn = torch.tensor(
            [e for e, n in enumerate(turns_per_episode) for _ in range(n)]
        )
        rewards = torch.randn(len(episode_of_turn), generator=generator, dtype=torch.float64)
        assert close(
            returns_to_go(rewards, episode_of_turn),
            _loop_returns(rewards.tolist(), episode_of_turn.tolist()),
        )
        turn_of_token = torch.randint(0, len(episode_of_turn), (40,), generator=generator)
        values = torch.randn(40, generator=generator, dtype=torch.float64)
        assert close(
            per_turn_mean(values, turn_of_token, len(episode_of_turn)),
            _loop_means(values.tolist(), turn_of_token.tolist(), len(episode_of_turn)),
        )


def test_ppo_loss_matches_a_loop():
    generator = torch.Generator().manual_seed(1)
    logprobs = -torch.rand(50, generator=generator, dtype=torch.float64)
    behaviour = -torch.rand(50, generator=generator, dtype=torch.float64)
    advantages = torch.randn(50, generator=generator, dtype=torch.float64)
    terms = []
    for lp, b, a in zip(logprobs.tolist(), behaviour.tolist(), advantages.tolist(), strict=True):
        ratio = math.exp(lp - b)
        terms.append(max(-a * ratio, -a * min(max(ratio, 0.8), 1.2)))
    assert close(ppo_policy_loss(logprobs, behaviour, advantages)[0], sum(terms) / len(terms))


def test_returns_stay_exact_over_a_long_float32_batch():
    # 60,000 episodes of 3 failing turns in one batch (rewards in [-0.6, -0.2]): float32
    # running sums reach -7e4, whose rounding errors (1e-2) are a tenth of a reward.
    generator = torch.Generator().manual_seed(0)
    episodes = 60_000
    rewards = -0.2 - 0.4 * torch.rand(3 * episodes, generator=generator)
    episode_of_turn = torch.arange(episodes).repeat_interleave(3)
    got = returns_to_go(rewards, episode_of_turn)
    assert got.dtype == torch.float32
    exact = rewards.double().view(episodes, 3).flip(1).cumsum(1).flip(1).reshape(-1)
    assert (got.double() - exact).abs().max() < 1e-6


def test_k3_kl_by_hand_and_where_float32_rounds_it_away():
    # r - 1 - log r at log r = 0.5: e^0.5 - 1.5; at log r = -1: e^-1 - 1 + 1 = e^-1.
    got = k3_kl(torch.tensor([-0.5, -2.0]), torch.tensor([-1.0, -1.0]))
    assert got.dtype == torch.float64
    assert close(got, [math.exp(0.5) - 1.5, math.exp(-1.0)])
    # A log-ratio of ~1e-6 between float32 log-probs: k3 is x^2 / 2 = 4.5e-13, which
    # float32's exp(x) - 1 - x rounds to exactly 0.
    policy = torch.tensor([-2.0], dtype=torch.float32)
    behaviour = policy - 1e-6
    x = (policy.double() - behaviour.double()).item()
    assert math.isclose(k3_kl(policy, behaviour).item(), x * x / 2, rel_tol=1e-6)
    assert (torch.exp(policy - behaviour) - 1 - (policy - behaviour)).item() == 0.0


def test_ratio_standard_error_by_hand():
    # Three rollouts: (log-ratio sum, tokens) = (1, 2), (2, 2), (3, 4). R = 6 / 8 = 0.75;
    # residuals x - R n: -0.5, 0.5, 0; squares sum to 0.5; m = 3, nbar = 8 / 3:
    # SE = sqrt(0.5 / 6) / (8 / 3) = 0.108253...
    x, n = [1.0, 2.0, 3.0], [2.0, 2.0, 4.0]
    sums = (
        sum(x),
        sum(n),
        sum(a * a for a in x),
        sum(a * b for a, b in zip(x, n, strict=True)),
        sum(b * b for b in n),
        3,
    )
    assert math.isclose(ratio_standard_error(*sums), math.sqrt(0.5 / 6) / (8 / 3), rel_tol=RTOL)
    assert math.isnan(ratio_standard_error(1.0, 2.0, 1.0, 2.0, 4.0, 1))
