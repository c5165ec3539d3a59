"""RLEF's objective as pure functions of tensors: rewards, per-turn KL, turn-level
advantages, the PPO policy loss and the clipped value loss.

Notation. A batch holds episodes; each episode has turns t = 1..T; each turn is one
model reply a_t to its context c_t. Batch-wide:
  N  tokens of all replies (the trained tokens), flattened
  S  turns of all episodes, ordered by episode then turn
  turn_of_token [N]    which turn (0..S-1) each token belongs to
  episode_of_turn [S]  which episode (0..E-1) each turn belongs to, non-decreasing

Reward of turn t (Gehring et al. 2025): R_t = r_t - beta * KL_t, where r_t = -0.2 if reply t
holds no valid code, the last turn adds +1 if the final program passes all tests and -1
otherwise, and KL_t is the MEAN over reply t's tokens of log pi - log ref (the geometric
mean of token probabilities: a sum would favour short replies). The value is turn-level,
V(c_t), read at the last prompt token before reply t; with gamma = 1 every token of reply
t gets the advantage A_t = sum_{i>=t} R_i - V(c_t).

Nothing here imports Ray, vLLM or DeepSpeed.
"""

from __future__ import annotations

import torch
from torch import Tensor

KL_BETA = 0.05
NO_CODE_PENALTY = -0.2
CLIP_EPS = 0.2
VALUE_CLIP = 0.2


def per_turn_mean(values: Tensor, turn_of_token: Tensor, num_turns: int) -> Tensor:
    """Mean of `values` [N] over each turn's tokens -> [S] (0 for a turn without tokens)."""
    sums = torch.zeros(num_turns, dtype=values.dtype, device=values.device)
    counts = torch.zeros(num_turns, dtype=values.dtype, device=values.device)
    sums.index_add_(0, turn_of_token, values)
    counts.index_add_(0, turn_of_token, torch.ones_like(values))
    return sums / counts.clamp(min=1)


def per_turn_kl(
    policy_logprobs: Tensor, reference_logprobs: Tensor, turn_of_token: Tensor, num_turns: int
) -> Tensor:
    """KL_t: mean over reply t's tokens of log pi(token) - log ref(token).

    policy_logprobs, reference_logprobs, turn_of_token: [N]  ->  [S]
    """
    return per_turn_mean(policy_logprobs - reference_logprobs, turn_of_token, num_turns)


def turn_rewards(
    valid_code: Tensor,
    last_turn: Tensor,
    episode_passed: Tensor,
    kl: Tensor,
    beta: float = KL_BETA,
    no_code_penalty: float = NO_CODE_PENALTY,
) -> Tensor:
    """R_t = r_t - beta * KL_t.

    valid_code [S] bool: reply t holds valid code.
    last_turn [S] bool: t is its episode's last turn.
    episode_passed [S] bool: the episode's final program passes all tests (any turn may
      carry it; only last turns use it).
    kl [S]: per_turn_kl.  ->  [S]
    """
    # Built in kl's dtype: in float64 the rewards are exactly -0.2, +1 and -1.
    zero = torch.zeros_like(kl)
    code = torch.where(valid_code, zero, torch.full_like(kl, no_code_penalty))
    outcome = torch.where(episode_passed, torch.ones_like(kl), torch.full_like(kl, -1.0))
    return code + torch.where(last_turn, outcome, zero) - beta * kl


def returns_to_go(rewards: Tensor, episode_of_turn: Tensor) -> Tensor:
    """G_t = sum of R_i over i >= t within the episode (gamma = 1), in `rewards`' dtype.

    rewards [S], episode_of_turn [S] (non-decreasing)  ->  [S]

    The running sums span the whole batch, so they are taken in float64: in float32 the
    sum over a long micro-batch grows until its rounding error (~1e-7 of the sum) is that
    of a reward.
    """
    exact = rewards.to(torch.float64)
    num_episodes = int(episode_of_turn.max().item()) + 1 if len(episode_of_turn) else 0
    totals = torch.zeros(num_episodes, dtype=exact.dtype, device=exact.device)
    totals.index_add_(0, episode_of_turn, exact)
    # Rewards of earlier turns of the same episode: a running sum, minus what earlier
    # episodes contributed to it.
    running = torch.cumsum(exact, 0) - exact
    episode_start = torch.cumsum(totals, 0) - totals
    before_in_episode = running - episode_start[episode_of_turn]
    return (totals[episode_of_turn] - before_in_episode).to(rewards.dtype)


def turn_advantages(returns: Tensor, values: Tensor) -> Tensor:
    """A_t = G_t - V(c_t): returns [S], values [S]  ->  [S]."""
    return returns - values


def targets(
    behaviour_logprobs: Tensor,
    reference_logprobs: Tensor,
    turn_of_token: Tensor,
    episode_of_turn: Tensor,
    valid_code: Tensor,
    last_turn: Tensor,
    episode_passed: Tensor,
    values: Tensor,
    turn_of_point: Tensor,
    beta: float = KL_BETA,
    no_code_penalty: float = NO_CODE_PENALTY,
) -> tuple[Tensor, Tensor]:
    """What the updates aim at, from the KL penalty to the advantages: the returns-to-go
    G_t of R_t = r_t - beta * KL_t, and the advantage G_t - V at each value point.

    behaviour_logprobs, reference_logprobs, turn_of_token: [N] (the KL is taken on the
    policy that sampled the tokens); episode_of_turn, valid_code, last_turn,
    episode_passed: [S] (see `turn_rewards`); values [P] and turn_of_point [P]: the value
    at each value point and its turn (P = S at turn level, the paper).
    ->  returns [S], advantages [P]
    """
    kl = per_turn_kl(behaviour_logprobs, reference_logprobs, turn_of_token, len(episode_of_turn))
    rewards = turn_rewards(valid_code, last_turn, episode_passed, kl, beta, no_code_penalty)
    returns = returns_to_go(rewards, episode_of_turn)
    return returns, turn_advantages(returns[turn_of_point], values)


def ppo_policy_loss(
    logprobs: Tensor, behaviour_logprobs: Tensor, advantages: Tensor, clip_eps: float = CLIP_EPS
) -> tuple[Tensor, Tensor]:
    """Token-level clipped PPO loss, against the behaviour policy that sampled the tokens.

    logprobs [N] (current policy), behaviour_logprobs [N] (the engine's, at sampling),
    advantages [N] (each token carries its turn's A_t).
    Returns (loss: mean over tokens of max(-A * ratio, -A * clip(ratio, 1-eps, 1+eps)),
    clip fraction: share of tokens where the clipped term was the larger).
    """
    ratio = torch.exp(logprobs - behaviour_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = torch.maximum(unclipped, clipped)
    return loss.mean(), (clipped > unclipped).to(logprobs.dtype).mean()


def k3_kl(logprobs: Tensor, behaviour_logprobs: Tensor) -> Tensor:
    """Per token, r - 1 - log r with r = pi / mu (Schulman's k3): >= 0, and its mean over
    tokens sampled from mu estimates KL(mu || pi). In float64, through expm1: in float32,
    exp(x) - 1 - x is 0 or rounding noise of ~1e-8, of either sign, for |x| below ~3e-4,
    where it should be x^2 / 2 (5e-13 at 1e-6).

    logprobs [N] (pi), behaviour_logprobs [N] (mu, which sampled the tokens)  ->  [N] float64
    """
    log_ratio = logprobs.to(torch.float64) - behaviour_logprobs.to(torch.float64)
    return torch.expm1(log_ratio) - log_ratio


def ratio_standard_error(
    sum_x: float, sum_n: float, sum_xx: float, sum_xn: float, sum_nn: float, count: int
) -> float:
    """The standard error of the ratio estimate R = sum x_i / sum n_i over `count` groups
    (e.g. a mean over tokens with rollouts as the independent units: x_i the rollout's sum,
    n_i its token count), from the five sums; the delta method:
    SE^2 = sum (x_i - R n_i)^2 / (m (m - 1) nbar^2), m = count, nbar = sum_n / m.
    NaN for fewer than two groups."""
    if count < 2 or sum_n <= 0:
        return float("nan")
    ratio = sum_x / sum_n
    residual = max(sum_xx - 2 * ratio * sum_xn + ratio**2 * sum_nn, 0.0)
    mean_n = sum_n / count
    return (residual / (count * (count - 1))) ** 0.5 / mean_n


def clipped_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, value_clip: float = VALUE_CLIP
) -> Tensor:
    """0.5 * mean of max((V - G)^2, (V_clip - G)^2), V_clip = V_old + clamp(V - V_old, -a, a):
    `value_clip` clips the predicted value, not the loss.

    values [S] (current), old_values [S] (before this iteration's updates), returns [S].
    """
    clipped = old_values + torch.clamp(values - old_values, -value_clip, value_clip)
    return 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2).mean()
