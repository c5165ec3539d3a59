"""The sandbox's policy: limits that hold for every job, whatever the problem says."""

from __future__ import annotations

import math
from dataclasses import dataclass

ISOLATION_MODES = ("auto", "namespaces", "none")
MAX_FILE_MB = 16 * 1024
"""The largest `max_file_mb`: /tmp and /dev/shm, 4 times it each, live in memory."""


class ConfigError(ValueError):
    """A setting that cannot work; the message names its key. The root of every config
    error of the project: each config, in this layer or above, raises it (or a subclass)
    from `__post_init__`, and the entry points print it as one line and exit 2. It lives
    here, in the lowest layer, so that every layer can raise it."""


class SandboxConfigError(ConfigError):
    """A sandbox setting that cannot work; the message names the field."""


@dataclass
class SandboxConfig:
    workers: int = 1
    """Fork servers per sandbox, i.e. tests that run at the same time."""
    isolation: str = "auto"
    """`namespaces` (fail if the kernel refuses), `auto` (namespaces, else warn loudly), `none`."""
    wall_time_factor: float = 2.0
    """Wall-clock limit = time limit x this + `wall_time_grace_s` (CPU time is the judged limit)."""
    wall_time_grace_s: float = 1.0
    """Seconds added to the wall-clock limit, so a loaded machine does not fail correct code."""
    max_processes: int = 16
    """Processes and threads one test may have at once; fork and thread bombs stop here."""
    max_file_mb: int = 64
    """Largest file a test may write; /tmp and /dev/shm hold 4 times this each."""
    max_stdout_bytes: int = 32 * 1024 * 1024
    """A test whose stdout grows past this is stopped: `output_exceeded`."""
    max_stderr_bytes: int = 1024 * 1024
    """A test whose stderr grows past this is stopped: `output_exceeded`."""
    keep_chars: int = 4096
    """Characters of stdout/stderr kept in each test result (middle cut, marked)."""
    job_timeout_margin_s: float = 30.0
    """Seconds past the sum of a job's wall-clock limits before its server is declared hung."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.isolation not in ISOLATION_MODES:
            raise SandboxConfigError(
                f"sandbox.isolation {self.isolation!r} is not one of {', '.join(ISOLATION_MODES)}"
            )
        for name in (
            "workers",
            "max_processes",
            "max_file_mb",
            "max_stdout_bytes",
            "max_stderr_bytes",
            "keep_chars",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise SandboxConfigError(f"sandbox.{name} must be a whole number, got {value!r}")
        for name in ("wall_time_factor", "wall_time_grace_s", "job_timeout_margin_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise SandboxConfigError(f"sandbox.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise SandboxConfigError(f"sandbox.{name} must be finite, got {value!r}")
        if self.max_file_mb > MAX_FILE_MB:
            raise SandboxConfigError(
                f"sandbox.max_file_mb must be at most {MAX_FILE_MB} (it sizes /tmp and "
                f"/dev/shm, held in memory), got {self.max_file_mb!r}"
            )
        positive = {
            "workers": self.workers,
            "wall_time_factor": self.wall_time_factor,
            "max_processes": self.max_processes,
            "max_file_mb": self.max_file_mb,
            "max_stdout_bytes": self.max_stdout_bytes,
            "max_stderr_bytes": self.max_stderr_bytes,
            "keep_chars": self.keep_chars,
        }
        for name, value in positive.items():
            if not value > 0:
                raise SandboxConfigError(f"sandbox.{name} must be positive, got {value!r}")
        if self.wall_time_factor < 1:
            raise SandboxConfigError(
                f"sandbox.wall_time_factor must be at least 1, got {self.wall_time_factor!r}"
            )
        for name in ("wall_time_grace_s", "job_timeout_margin_s"):
            if getattr(self, name) < 0:
                raise SandboxConfigError(f"sandbox.{name} must not be negative")

    def wall_limit_s(self, time_limit_s: float) -> float:
        """Wall-clock seconds a test with this CPU time limit may take."""
        return time_limit_s * self.wall_time_factor + self.wall_time_grace_s
