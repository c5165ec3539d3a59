"""`python -m sandbox run|batch`: output format, exit codes, malformed input."""

import json
import subprocess
import sys

import pytest

ADD = "a, b = map(int, input().split())\nprint(a + b)\n"


def cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def files(tmp_path):
    (tmp_path / "add.py").write_text(ADD)
    (tmp_path / "tests.json").write_text(
        json.dumps({"input": ["1 2\n", "5 5\n"], "output": ["3\n", "11\n"]})
    )
    return tmp_path


def test_run_prints_one_json_object_and_exits_0_whatever_the_verdict(files):
    done = cli("run", "--program", "add.py", "--tests", "tests.json", cwd=files)
    assert done.returncode == 0
    result = json.loads(done.stdout)
    assert result["passed"] is False
    assert [t["verdict"] for t in result["tests"]] == ["passed", "wrong_answer"]
    assert set(result["tests"][0]) == {"verdict", "time_s", "stdout", "stderr"}
    assert done.stdout.count("\n") == 1


def test_run_with_limits(files):
    (files / "spin.py").write_text("while True: pass")
    done = cli(
        "run",
        "--program",
        "spin.py",
        "--tests",
        "tests.json",
        "--time-limit",
        "0.3",
        "--memory-mb",
        "256",
        "--stop-on-first-failure",
        cwd=files,
    )
    assert done.returncode == 0
    assert [t["verdict"] for t in json.loads(done.stdout)["tests"]] == ["timeout"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--program", "missing.py", "--tests", "tests.json"], "cannot read missing.py"),
        (["run", "--program", "add.py", "--tests", "bad.json"], "not valid JSON"),
        (["run", "--program", "add.py", "--tests", "mismatched.json"], "one output per input"),
        (["run", "--program", "add.py"], "--tests"),
        (
            ["run", "--program", "add.py", "--tests", "tests.json", "--time-limit", "x"],
            "argument --time-limit: not a number: 'x'",
        ),
        *(
            (
                ["run", "--program", "add.py", "--tests", "tests.json", "--time-limit", value],
                "argument --time-limit: must be a number of seconds above 0 and at most 3600",
            )
            for value in ("-1", "0", "inf", "nan", "1e300", "1e7")
        ),
        (
            ["run", "--program", "add.py", "--tests", "tests.json", "--memory-mb", "1e14"],
            "argument --memory-mb: not a whole number: '1e14'",
        ),
        (
            ["run", "--program", "add.py", "--tests", "tests.json", "--memory-mb", "10" * 7],
            "argument --memory-mb: must be between 16 and 1048576 MB",
        ),
        (["run", "--program", "add.py", "--tests", "deep.json"], "deep.json: JSON nested too"),
        (["run", "--program", "add.py", "--tests", "none.json"], "at least one test"),
        (["run", "--program", "add.py", "--tests", "surrogate.json"], "lone surrogate"),
        (["batch", "--jobs", "missing.jsonl"], "cannot read missing.jsonl"),
        (["batch", "--jobs", "x", "--workers", "0"], "sandbox.workers must be positive"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(files, args, message):
    (files / "bad.json").write_text("{not json")
    (files / "mismatched.json").write_text('{"input": ["1"], "output": []}')
    (files / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (files / "none.json").write_text('{"input": [], "output": []}')
    (files / "surrogate.json").write_text('{"input": ["\\ud800"], "output": ["1"]}')
    done = cli(*args, cwd=files)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert message in done.stderr


def test_batch_prints_one_line_per_job_in_input_order(files):
    jobs = [
        {"id": "a", "program": ADD, "tests": {"input": ["1 2"], "output": ["3"]}},
        {
            "id": 7,
            "program": "print(1/0)",
            "tests": {"input": [""], "output": [""]},
            "time_limit_s": 1,
            "memory_mb": 256,
        },
        "not an object",
        {"id": "c", "program": ADD},
        {
            "id": "d",
            "program": "import time\ntime.sleep(0.3)\nprint(1)",
            "tests": {"input": [""], "output": ["1"]},
        },
    ]
    lines = [json.dumps(job) for job in jobs]
    lines.insert(3, "{broken json")
    (files / "jobs.jsonl").write_text("\n".join(lines) + "\n\n")
    done = cli("batch", "--jobs", "jobs.jsonl", "--workers", "2", cwd=files)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["id"] for r in results] == ["a", 7, None, None, "c", "d"]
    assert [r["passed"] for r in results] == [True, False, False, False, False, True]
    assert results[1]["tests"][0]["verdict"] == "runtime_error"
    assert "line 3" in results[2]["error"] and "line 4" in results[3]["error"]
    assert "not valid JSON" in results[3]["error"]
    assert '"program" and "tests"' in results[4]["error"]


def test_a_latin1_program_with_a_coding_declaration_runs_as_with_python(tmp_path):
    source = "# -*- coding: latin-1 -*-\nprint('café'.upper())\n"
    (tmp_path / "p.py").write_bytes(source.encode("latin-1"))
    (tmp_path / "t.json").write_text(json.dumps({"input": [""], "output": ["CAFÉ"]}))
    python = subprocess.run([sys.executable, "p.py"], cwd=tmp_path, capture_output=True)
    assert python.stdout.decode() == "CAFÉ\n"
    done = cli("run", "--program", "p.py", "--tests", "t.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passed"] is True


def test_a_utf8_program_with_a_bom_runs(tmp_path):
    (tmp_path / "p.py").write_bytes(b"\xef\xbb\xbfprint(6 * 7)\n")
    (tmp_path / "t.json").write_text(json.dumps({"input": [""], "output": ["42"]}))
    done = cli("run", "--program", "p.py", "--tests", "t.json", cwd=tmp_path)
    assert json.loads(done.stdout)["passed"] is True


def test_bad_lines_of_a_batch_are_reported_and_the_rest_still_runs(files):
    good = {"program": "print(1)", "tests": {"input": [""], "output": ["1"]}}
    bad = {
        "deep": "[" * 100_000 + "]" * 100_000,
        "surrogate": json.dumps({**good, "tests": {"input": ["\ud800"], "output": ["1"]}}),
        "no tests": json.dumps({**good, "tests": {"input": [], "output": []}}),
        "bool limit": json.dumps({**good, "time_limit_s": True}),
        "huge limit": json.dumps({**good, "time_limit_s": 1e300}),
        "string flag": json.dumps({**good, "stop_on_first_failure": "no"}),
        "float memory": json.dumps({**good, "memory_mb": 1e14}),
    }
    lines = [json.dumps({**good, "id": "first"}), *bad.values(), json.dumps({**good, "id": "last"})]
    (files / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    done = cli("batch", "--jobs", "jobs.jsonl", cwd=files)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == len(lines)
    assert results[0]["passed"] and results[-1]["passed"]
    messages = [r["error"] for r in results[1:-1]]
    expected = ["nested too deeply", "lone surrogate", "at least one test", "time_limit_s must",
                "time_limit_s must", "stop_on_first_failure must be true or false",
                "memory_mb must be a whole number"]  # fmt: skip
    for message, want, number in zip(messages, expected, range(2, 9), strict=True):
        assert message.startswith(f"line {number}: ") and want in message, message


def test_the_python_api_refuses_tests_that_are_not_lists_of_strings():
    from sandbox import JobError, SandboxConfig, SandboxConfigError, TestSet

    with pytest.raises(JobError, match="must be a list of strings, got str"):
        TestSet("stdio", "21", "42")  # would be two tests, "2" and "1"
    with pytest.raises(JobError, match="must be a list of strings, got NoneType"):
        TestSet("stdio", None, None)
    with pytest.raises(JobError, match="one kind per job"):
        TestSet.from_json({"assertions": ["assert True"], "input": [""], "output": [""]})
    assert TestSet("stdio", ["1"], ["2"]).inputs == ("1",)
    for bad in ({"workers": 1.5}, {"keep_chars": 1.5}, {"wall_time_grace_s": float("nan")},
                {"max_file_mb": 10**9}, {"max_processes": True}):  # fmt: skip
        with pytest.raises(SandboxConfigError, match=f"sandbox.{next(iter(bad))}"):
            SandboxConfig(**bad)
