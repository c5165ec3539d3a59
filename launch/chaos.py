"""Chaos for drills and tests: kill the run's actors at random while it trains, the way a
crashed process or a lost node would, to see that nothing is lost.

`chaos.enabled=true` kills `chaos.kills_per_iteration` actors per iteration (from
`chaos.first_iteration` on), each at a random moment in the first `chaos.window_s`
seconds of the iteration, picked at random
among the live actors whose names start with one of `chaos.targets`. Ray restarts
inference and sandbox actors and their lost work is redone; a killed learner rank makes
the run relaunch its learner group from the last complete checkpoint (at most
`run.max_restarts` times; then the run ends with a message naming the rank and the
checkpoint to resume from).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox import ConfigError

CHAOS_TARGETS = ("inference", "sandbox", "learner")


@dataclass
class ChaosConfig:
    enabled: bool = False
    """Kill actors at random during the run (off by default: for drills and tests)."""
    kills_per_iteration: int = 1
    """Actors killed per iteration."""
    window_s: float = 10.0
    """Each kill lands at a uniformly random moment this many seconds or less after the
    iteration starts."""
    first_iteration: int = 1
    """No kills before this iteration (e.g. 2: after a first checkpoint)."""
    targets: list[str] = field(default_factory=lambda: ["inference", "sandbox"])
    """Which actors may be killed, by name prefix: `inference`, `sandbox`, `learner`."""
    seed: int = 0
    """Seeds the kills' moments and victims."""

    def __post_init__(self) -> None:
        """Raise `ConfigError` for settings that cannot work, one message per key."""
        found = []
        unknown = sorted(set(self.targets) - set(CHAOS_TARGETS))
        if unknown:
            found.append(f"chaos.targets: {unknown} not among {list(CHAOS_TARGETS)}")
        if self.enabled and not self.targets:
            found.append("chaos.targets is empty, but chaos.enabled=true")
        if self.kills_per_iteration < 0 or self.window_s < 0:
            found.append("chaos.kills_per_iteration and chaos.window_s must be >= 0")
        if found:
            raise ConfigError("; ".join(found))


class ChaosMonkey:
    """Kills actors by name with `ray.kill` (a forced exit of their process; Ray restarts
    them as it would after a crash). `names()` lists the candidates' names."""

    def __init__(
        self, config: ChaosConfig, names: Callable[[], list[str]], say: Callable[[str], None]
    ) -> None:
        self.config = config
        self.names = names
        self.say = say
        self.kills: list[tuple[int, str]] = []
        """(iteration, actor name) of every kill so far."""
        self._random = random.Random(config.seed)
        self._timers: list[threading.Timer] = []
        self._iterations_started: set[int] = set()

    def iteration_started(self, iteration: int) -> None:
        """Schedule this iteration's kills (once: an iteration played again after the
        learner group was relaunched gets none)."""
        if not self.config.enabled or iteration < self.config.first_iteration:
            return
        if iteration in self._iterations_started:
            return
        self._iterations_started.add(iteration)
        for _ in range(self.config.kills_per_iteration):
            delay = self._random.uniform(0, self.config.window_s)
            pick = self._random.random()
            timer = threading.Timer(delay, self._kill, args=(iteration, pick))
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def _kill(self, iteration: int, pick: float) -> None:
        import ray

        candidates = sorted(
            name
            for name in self.names()
            if any(name.startswith(f"{target}-") for target in self.config.targets)
        )
        if not candidates:
            return
        name = candidates[int(pick * len(candidates))]
        try:
            ray.kill(ray.get_actor(name), no_restart=False)
        except ValueError:  # gone meanwhile (the run is ending)
            return
        self.kills.append((iteration, name))
        self.say(f"chaos: killed {name} during iteration {iteration}")

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
