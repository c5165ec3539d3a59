"""`python -m sandbox run|batch`: judge programs from the command line.

`run` judges one program on one test file and prints one JSON object; `batch` judges a
JSON-lines file of jobs on several workers and prints one JSON line per job, in input
order. Both exit 0 whenever they judged (whatever the verdicts), 2 with a one-line
message for bad arguments or unreadable input, and 1 if the sandbox cannot start.
"""

from __future__ import annotations

import argparse
import json
import sys

from .client import Sandbox, SandboxStartError
from .config import ISOLATION_MODES, SandboxConfig, SandboxConfigError
from .records import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIME_LIMIT_S,
    Job,
    JobError,
    TestSet,
    check_memory_mb,
    check_time_limit,
)


class UsageError(Exception):
    """Bad arguments or input files: exit 2 with this one-line message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise UsageError(message)


def _checked(parse, check):
    """An argparse type: `parse` the text, then `check` the value (JobError: bad value)."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            kind = "a whole number" if parse is int else "a number"
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        try:
            return check(value, "")
        except JobError as exc:
            raise argparse.ArgumentTypeError(str(exc).strip()) from None

    convert.__name__ = parse.__name__  # what argparse names in "invalid <type> value"
    return convert


def _load_json(text: str, path: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise UsageError(f"{path}: JSON nested too deeply") from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--isolation",
        choices=ISOLATION_MODES,
        default="auto",
        help="namespaces (required), auto (warn if unavailable), none",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="judge one program on one test file")
    run.add_argument("--program", required=True, help="Python source file")
    run.add_argument(
        "--tests",
        required=True,
        help='JSON: {"input": [...], "output": [...]} or {"assertions": [...]}',
    )
    run.add_argument(
        "--time-limit",
        type=_checked(float, check_time_limit),
        default=DEFAULT_TIME_LIMIT_S,
        help="CPU seconds per test (default %(default)s)",
    )
    run.add_argument(
        "--memory-mb",
        type=_checked(int, check_memory_mb),
        default=DEFAULT_MEMORY_MB,
        help="address space per test, MB (default %(default)s)",
    )
    run.add_argument(
        "--stop-on-first-failure", action="store_true", help="stop at the first failing test"
    )
    batch = commands.add_parser("batch", help="judge a JSON-lines file of jobs")
    batch.add_argument(
        "--jobs",
        required=True,
        help='JSON lines: {"id", "program", "tests", "time_limit_s", "memory_mb"}',
    )
    batch.add_argument("--workers", type=int, default=1, help="tests run at once (default 1)")
    return parser


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc


def _read_program(path: str) -> str:
    """A Python source file decoded as `python3 FILE` would: a BOM or a coding
    declaration (PEP 263) says how, UTF-8 otherwise."""
    import tokenize

    try:
        with open(path, "rb") as f:
            encoding, _ = tokenize.detect_encoding(f.readline)
            f.seek(0)
            return f.read().decode(encoding)
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc


def _load_run_job(args: argparse.Namespace) -> Job:
    program = _read_program(args.program)
    try:
        tests = TestSet.from_json(_load_json(_read_text(args.tests), args.tests))
    except JobError as exc:
        raise UsageError(f"{args.tests}: {exc}") from exc
    try:
        return Job(program, tests, args.time_limit, args.memory_mb, args.stop_on_first_failure)
    except JobError as exc:
        raise UsageError(f"{args.program}: {exc}") from exc


def _parse_batch_line(number: int, line: str) -> tuple[object, Job | str]:
    """The job on one input line, with its id; or the id (if any) and what is wrong."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"line {number}: not valid JSON: {exc}"
    except RecursionError:
        return None, f"line {number}: JSON nested too deeply"
    job_id = obj.get("id") if isinstance(obj, dict) else None
    try:
        return job_id, Job.from_json(obj)
    except JobError as exc:
        return job_id, f"line {number}: {exc}"


def _batch(args: argparse.Namespace, config: SandboxConfig) -> None:
    text = _read_text(args.jobs)
    entries = [
        _parse_batch_line(number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    jobs = [job for _, job in entries if isinstance(job, Job)]
    from tqdm import tqdm

    with (
        Sandbox(config) as sandbox,
        tqdm(
            total=len(jobs), desc="judging", unit="job", file=sys.stderr, disable=None
        ) as progress,
    ):
        judgements = iter(sandbox.run_many(jobs, on_done=progress.update))
    for job_id, job in entries:
        if isinstance(job, Job):
            print(json.dumps({"id": job_id, **next(judgements).to_json()}))
        else:
            print(json.dumps({"id": job_id, "passed": False, "error": job, "tests": []}))


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        workers = getattr(args, "workers", 1)
        config = SandboxConfig(workers=workers, isolation=args.isolation)
        if args.command == "run":
            job = _load_run_job(args)
            with Sandbox(config) as sandbox:
                print(json.dumps(sandbox.run(job).to_json()))
        else:
            _batch(args, config)
    except (UsageError, SandboxConfigError) as exc:
        print(f"python -m sandbox: error: {exc}", file=sys.stderr)
        return 2
    except SandboxStartError as exc:
        print(f"python -m sandbox: {exc}", file=sys.stderr)
        return 1
    return 0
