"""Composing Hydra configs for our entry points, with errors that name the key.

Every entry point's config is a dataclass registered in Hydra's ConfigStore, so an
override with a typo or a wrong type fails loudly; `compose_config` turns Hydra's and
OmegaConf's exceptions into one `ConfigError` line that says what was wrong.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from problems.config import DataError
from sandbox import ConfigError, SandboxStartError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class RunStopped(RuntimeError):
    """The run cannot go on (e.g. a learner rank died); the message says why and how to
    resume."""


USAGE_ERRORS = (ConfigError, DataError)
"""What a user's config or data got wrong (every config's error is a `ConfigError`): exit
2 with the message, never a traceback."""


def run_entry_point(
    name: str, body: Callable[[], str], record: Callable[[str], None] | None = None
) -> int:
    """Run an entry point: print the summary `body` returns and exit 0; for a usage error
    print one line and exit 2; if the sandbox cannot start or the run stopped, exit 1.
    `record` also gets what is printed (a run's log file)."""
    try:
        summary = body()
    except USAGE_ERRORS as exc:
        status, line, stream = 2, f"{name}: error: {exc}", sys.stderr
    except (SandboxStartError, RunStopped) as exc:
        status, line, stream = 1, f"{name}: {exc}", sys.stderr
    else:
        status, line, stream = 0, summary, sys.stdout
    print(line, file=stream)
    if record is not None:
        record(line)
    return status


def compose_config(config_name: str, overrides: list[str], schema: type) -> object:
    """The `schema` dataclass instance composed from conf/<config_name>.yaml and `overrides`."""
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    ConfigStore.instance().store(name=f"{config_name}_schema", node=schema)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            config = compose(config_name=config_name, overrides=overrides)
        return OmegaConf.to_object(config)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    """Hydra nests the useful message: the innermost cause's first line, with its key."""
    key = getattr(exc, "full_key", None)
    while exc.__cause__ is not None:
        exc = exc.__cause__
        key = getattr(exc, "full_key", None) or key
    message = str(exc).strip().splitlines()[0]
    return f"{key}: {message}" if key and key not in message else message
