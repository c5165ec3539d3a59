"""Judging real programs through the sandbox: verdicts, outputs, exit codes, tracebacks."""

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from fixtures import run_one, stdio_job

from sandbox import Job, TestSet

ADD = """
a, b = map(int, input().split())
print(a + b)
"""


def test_mixed_verdicts_on_one_job_in_test_order(sandbox):
    program = """
    import sys, time
    n = int(input())
    if n == 1: print(1)
    elif n == 2: print(3)
    elif n == 3: raise ValueError("three")
    elif n == 4:
        while True: pass
    elif n == 5: x = bytearray(2 * 1024 ** 3)
    elif n == 6:
        while True: sys.stdout.write("y" * 65536)
    """
    job = stdio_job(
        program,
        ["1", "2", "3", "4", "5", "6"],
        ["1", "2", "3", "4", "5", "6"],
        time_limit_s=1.0,
        memory_mb=256,
    )
    judgement = sandbox.run(job)
    assert [t.verdict for t in judgement.tests] == [
        "passed",
        "wrong_answer",
        "runtime_error",
        "timeout",
        "memory_exceeded",
        "output_exceeded",
    ]
    assert not judgement.passed
    assert "ValueError: three" in judgement.tests[2].stderr


def test_all_passing_job_passes(sandbox):
    judgement = sandbox.run(stdio_job(ADD, ["1 2\n", "10 -3\n"], ["3\n", "7\n"]))
    assert judgement.passed
    assert [t.stdout for t in judgement.tests] == ["3\n", "7\n"]


def test_float_whitespace_and_case_tolerance(sandbox):
    program = """
    print("  Yes  ")
    print(1 / 3)
    print(2 ** 200)
    """
    expected = "YES\n0.33333\n" + str(2**200) + "\n"
    assert run_one(sandbox, program, "", expected).verdict == "passed"
    assert run_one(sandbox, program, "", expected.replace("0.33333", "0.3333")).verdict == (
        "wrong_answer"
    )


def test_syntax_error_is_a_runtime_error_on_every_test(sandbox):
    judgement = sandbox.run(stdio_job("def f(:\n    pass\n", ["1", "2", "3"], ["1", "2", "3"]))
    assert [t.verdict for t in judgement.tests] == ["runtime_error"] * 3
    assert "SyntaxError" in judgement.tests[0].stderr
    assert 'File "solution.py", line 1' in judgement.tests[0].stderr


def test_stop_on_first_failure_stops(sandbox):
    job = stdio_job(ADD, ["1 1", "2 2", "3 3"], ["2", "5", "6"], stop_on_first_failure=True)
    judgement = sandbox.run(job)
    assert [t.verdict for t in judgement.tests] == ["passed", "wrong_answer"]
    assert not judgement.passed
    syntax = sandbox.run(stdio_job("(", ["1", "2"], ["1", "2"], stop_on_first_failure=True))
    assert len(syntax.tests) == 1 and not syntax.passed


def test_exit_codes(sandbox):
    assert run_one(sandbox, "print(5)\nraise SystemExit(0)", "", "5").verdict == "passed"
    assert run_one(sandbox, "import sys\nprint(5)\nsys.exit(3)", "", "5").verdict == "runtime_error"
    assert run_one(sandbox, "import os\nprint(5, flush=True)\nos._exit(0)", "", "5").verdict == (
        "passed"
    )
    message = run_one(sandbox, "import sys\nsys.exit('bad input')", "", "")
    assert message.verdict == "runtime_error" and "bad input" in message.stderr


def test_a_program_cannot_fake_memory_exceeded(sandbox):
    assert run_one(sandbox, "import sys\nsys.exit(97)").verdict == "runtime_error"


def test_reading_past_the_end_of_input(sandbox):
    result = run_one(sandbox, "a = input()\nb = input()\nprint(a, b)", "only one line\n")
    assert result.verdict == "runtime_error"
    assert "EOFError" in result.stderr


def test_traceback_shows_the_programs_frames_only(sandbox):
    program = textwrap.dedent("""
    def solve(x):
        return 10 // x
    print(solve(int(input())))
    """)
    result = run_one(sandbox, program, "0\n", "")
    assert result.verdict == "runtime_error"
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert 'File "solution.py", line 3, in solve' in result.stderr
    assert "return 10 // x" in result.stderr  # source lines are shown
    assert "zygote" not in result.stderr and "sandbox" not in result.stderr


def test_main_guard_and_stdin_buffer_work(sandbox):
    program = """
    import sys
    def main():
        data = sys.stdin.buffer.read().split()
        print(sum(map(int, data)))
    if __name__ == "__main__":
        main()
    """
    assert run_one(sandbox, program, "1 2 3\n4\n", "10").verdict == "passed"


def test_assertion_scripts_pass_fail_and_capture_the_message(sandbox):
    program = "def add(a, b):\n    return a + b if a < 5 else a - b\n"
    tests = TestSet(
        "assertions",
        (
            "assert add(1, 2) == 3",
            "assert add(7, 1) == 8, 'add(7, 1) should be 8'",
            "assert add(",
        ),
    )
    judgement = sandbox.run(Job(program, tests, time_limit_s=2.0, memory_mb=512))
    assert [t.verdict for t in judgement.tests] == ["passed", "runtime_error", "runtime_error"]
    assert "AssertionError: add(7, 1) should be 8" in judgement.tests[1].stderr
    assert 'File "test.py", line 1' in judgement.tests[1].stderr
    assert "invalid test script" in judgement.tests[2].stderr


def test_a_program_cannot_read_its_assertion_scripts(sandbox):
    program = "import os\nprint(sorted(os.listdir('.')))\nx = 1\n"
    tests = TestSet("assertions", ("assert x == 1  # the secret answer",))
    result = sandbox.run(Job(program, tests, time_limit_s=2.0, memory_mb=512)).tests[0]
    assert result.verdict == "passed"
    assert result.stdout == "['solution.py']\n"


def test_long_output_is_trimmed_with_a_marker(sandbox):
    result = run_one(sandbox, "print('x' * 100000)", "", "")
    assert result.verdict == "wrong_answer"
    assert "characters cut]" in result.stdout
    assert len(result.stdout) < 5000


def test_run_many_keeps_input_order(sandbox):
    jobs = [stdio_job(f"print({i})", [""], [str(i)]) for i in range(12)]
    judgements = sandbox.run_many(jobs)
    assert [j.tests[0].stdout.strip() for j in judgements] == [str(i) for i in range(12)]
    assert all(j.passed for j in judgements)


# --- the verdict `python3 solution.py` would get (issue 19) ---------------------------


def _plain_python(program: str, stdin: str) -> subprocess.CompletedProcess:
    """The program run the usual way, as the reference for what the sandbox must do."""
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "solution.py"
        path.write_text(program, encoding="utf-8")
        return subprocess.run(
            [sys.executable, str(path)],
            input=stdin.encode(),
            capture_output=True,
            timeout=30,
            cwd=where,  # in its own directory, as the sandbox runs it
        )


@pytest.mark.parametrize("ending", ["exit()", "quit()", "exit(0)", "quit(None)"])
def test_a_program_that_ends_with_exit_or_quit_passes(sandbox, ending):
    program = f"print(int(input()) * 2)\n{ending}\n"
    assert _plain_python(program, "21\n").returncode == 0
    assert run_one(sandbox, program, "21\n", "42").verdict == "passed"


def test_exit_with_a_status_is_a_runtime_error_as_in_python(sandbox):
    assert _plain_python("exit(3)", "").returncode == 3
    assert run_one(sandbox, "exit(3)").verdict == "runtime_error"


def test_stdin_keeps_carriage_returns_as_python_does(sandbox):
    program = "line = input()\nprint(len(line), repr(line[-1]))"
    expected = _plain_python(program, "abc\r\n").stdout.decode()
    assert expected == "4 '\\r'\n"
    result = run_one(sandbox, program, "abc\r\n", expected)
    assert result.stdout == expected


def test_stdout_writes_surrogate_escapes_back_as_bytes_as_python_does(sandbox):
    program = 'print("caf\\udce9")'  # e.g. a file name that is not UTF-8
    assert _plain_python(program, "").stdout == b"caf\xe9\n"
    result = run_one(sandbox, program)
    assert result.verdict == "wrong_answer", result.stderr  # it ran, and printed
    assert result.stdout == "caf\ufffd\n"  # the byte, as the judge decodes it


def test_a_program_that_starts_with_a_bom_runs(sandbox):
    program = "\ufeffprint(6 * 7)\n"
    assert _plain_python(program, "").stdout == b"42\n"
    assert run_one(sandbox, program, "", "42").verdict == "passed"


def test_the_programs_own_exit_status_97_is_a_runtime_error(sandbox):
    program = "import os\nos._exit(97)"
    assert _plain_python(program, "").returncode == 97
    assert run_one(sandbox, program).verdict == "runtime_error"


def test_a_program_that_kills_itself_is_a_runtime_error(sandbox):
    program = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    assert _plain_python(program, "").returncode == -9
    assert run_one(sandbox, program).verdict == "runtime_error"


def test_an_mmap_over_the_memory_limit_is_memory_exceeded(sandbox):
    program = "import mmap\nbuffer = mmap.mmap(-1, 2 << 30)\nprint(len(buffer))"
    result = run_one(sandbox, program, memory_mb=256)
    assert result.verdict == "memory_exceeded", result.stderr
    assert "Cannot allocate memory" in result.stderr


def test_an_oserror_that_is_not_about_memory_stays_a_runtime_error(sandbox):
    result = run_one(sandbox, "open('/nonexistent/file')")
    assert result.verdict == "runtime_error"


def test_c_recursion_that_crashes_python_crashes_here_too(sandbox):
    program = textwrap.dedent("""
    import sys
    sys.setrecursionlimit(10**7)
    nested = []
    for _ in range(10**6):
        nested = [nested]
    print(len(repr(nested)))
    """)
    assert _plain_python(program, "").returncode == -11  # SIGSEGV: the C stack is 8 MB
    result = run_one(sandbox, program, memory_mb=1024, time_limit_s=5)
    assert result.verdict == "runtime_error"
    assert result.time_s < 5


def test_a_program_a_test_starts_can_start_threads(sandbox):
    program = textwrap.dedent("""
    import subprocess, sys
    child = "import threading; t = threading.Thread(target=print, args=('hi',)); t.start()"
    print(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True).stdout)
    """)
    result = run_one(sandbox, program, "", "hi", memory_mb=1024)
    assert result.verdict == "passed", result.stderr


# --- found by a red team (issue 19) ---------------------------------------------------


@pytest.mark.parametrize(
    "ending", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "exit()", "raise SystemExit"]
)
def test_a_program_that_exits_before_the_assertions_run_does_not_pass(sandbox, ending):
    program = f"def add(a, b):\n    return a - b\n{ending}\n"
    tests = TestSet("assertions", ("assert add(2, 2) == 4",))
    assert sandbox.run(Job(program, tests)).tests[0].verdict == "runtime_error"
    right = "def add(a, b):\n    return a + b\n"
    assert sandbox.run(Job(right, tests)).passed


@pytest.mark.parametrize(
    "program",
    [
        "import sys\nsys.stderr = None\nprint(42)",
        "import sys\nprint(42)\nsys.stdout = None",
        "import sys\nclass Sink:\n    def write(self, text): pass\nprint(42)\nsys.stdout = Sink()",
    ],
)
def test_streams_the_program_replaced_do_not_turn_a_right_answer_wrong(sandbox, program):
    assert _plain_python(program, "").stdout == b"42\n"
    result = run_one(sandbox, program, "", "42")
    assert result.verdict == "passed", result


@pytest.mark.parametrize("status", ["2**100", "2**63", "-2**100"])
def test_an_exit_status_beyond_a_c_long_is_a_runtime_error_as_in_python(sandbox, status):
    program = f"print(42)\nraise SystemExit({status})"
    assert _plain_python(program, "").returncode == 255
    assert run_one(sandbox, program, "", "42").verdict == "runtime_error"


def test_a_module_the_program_writes_next_to_itself_imports_as_in_python(sandbox):
    program = "open('helper.py', 'w').write('X = 42\\n')\nimport helper\nprint(helper.X)"
    assert _plain_python(program, "").stdout == b"42\n"
    assert run_one(sandbox, program, "", "42").verdict == "passed"


def test_the_programs_own_excepthook_is_called_as_in_python(sandbox):
    program = textwrap.dedent("""
    import sys
    sys.excepthook = lambda kind, value, trace: print("hooked", kind.__name__)
    raise ValueError("x")
    """)
    assert _plain_python(program, "").stdout == b"hooked ValueError\n"
    result = run_one(sandbox, program)
    assert result.stdout == "hooked ValueError\n" and result.verdict == "runtime_error"


def test_help_exists_as_in_python(sandbox):
    program = "print(callable(help), 'help' in repr(help))"
    assert _plain_python(program, "").stdout == b"True True\n"
    assert run_one(sandbox, program, "", "True True").verdict == "passed"


def test_the_programs_module_has_the_names_a_script_gets_in_python(sandbox):
    program = textwrap.dedent("""
    print(sorted(globals()), __cached__, __spec__, __package__)
    import inspect
    print(inspect.getsource(inspect.currentframe()).splitlines()[0])
    """)
    expected = _plain_python(program, "").stdout.decode()
    assert run_one(sandbox, program, "", expected).stdout == expected
