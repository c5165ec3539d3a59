"""Toy contests: determinism, disjoint splits, the shape of each problem, and its programs.

Nothing is hard-coded to pass: every check compares generated problems with each other
(same or other seed, other split) or with what the programs really print, in-process for
hundreds of problems (our own template programs, trusted) and through the real sandbox for
a sample that covers every family of every split. The generator trusts a Python function
per program to predict its output; these tests are what check those functions.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time

import pytest

from problems.toy import (
    FAMILIES,
    FAMILY_BY_NAME,
    MAX_BUGS,
    MEMORY_MB,
    MIN_BUGS,
    PRIVATE_TESTS,
    SPLITS,
    TIME_LIMIT_S,
    families,
    family_of,
    generate_toy,
    split_params,
    statement_readings,
    toy_instances,
)
from sandbox import STDIO, outputs_match


def _content(problem) -> tuple:
    """What a model sees and is judged on: the statement and every test."""
    return problem.statement, problem.all_tests


def test_same_arguments_give_identical_problems():
    first = generate_toy("train", 300, seed=0)
    assert generate_toy("train", 300, seed=0) == first
    assert generate_toy("train", 120, seed=0) == first[:120]


def test_another_seed_gives_other_problems():
    ours = {_content(p) for p in generate_toy("train", 300, seed=0)}
    theirs = [_content(p) for p in generate_toy("train", 300, seed=1)]
    shared = sum(content in ours for content in theirs)
    assert shared <= 3, f"{shared} of 300 problems are the same with seeds 0 and 1"


def test_each_family_grid_is_partitioned_across_splits():
    for family in FAMILIES:
        parts = {split: set(split_params(family, split)) for split in SPLITS}
        assert set().union(*parts.values()) == set(family.grid), family.name
        assert sum(map(len, parts.values())) == len(family.grid), family.name
        if family.test_only:
            assert parts["train"] == parts["valid"] == set(), family.name
        else:
            assert all(parts.values()), f"{family.name}: a split has no parameters"


def test_splits_share_no_instance_whatever_the_seeds():
    drawn = {
        split: toy_instances(split, 600, seed=0) + toy_instances(split, 300, seed=split_seed)
        for split, split_seed in zip(SPLITS, (11, 22, 33), strict=True)
    }
    identities = {s: {(i.family, i.params) for i in drawn[s]} for s in SPLITS}
    contents = {s: {_content(i.problem) for i in drawn[s]} for s in SPLITS}
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not identities[a] & identities[b], f"{a} and {b} share (family, parameters)"
        assert not contents[a] & contents[b], f"{a} and {b} share (statement, tests)"


def test_no_statement_is_in_two_splits():
    """The readings of a statement with an unsaid detail go to one split together."""
    statements = {
        split: {i.problem.statement for i in toy_instances(split, 800, seed=3)} for split in SPLITS
    }
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not statements[a] & statements[b], f"{a} and {b} share a statement"


def _unsaid(split: str, count: int, seed: int) -> list:
    return [i for i in toy_instances(split, count, seed) if FAMILY_BY_NAME[i.family].hidden]


def test_an_unsaid_detail_is_settled_by_a_public_test_only():
    """Where a statement leaves a detail unsaid: its readings share the statement word for
    word, the detail's value is nowhere in it, and every other reading's reference fails a
    public test (the feedback shows the right reading) while the instance's own passes all."""
    unsaid = [i for split in SPLITS for i in _unsaid(split, 300, seed=6)]
    assert {i.family for i in unsaid} == {f.name for f in FAMILIES if f.hidden}
    for instance in unsaid:
        problem = instance.problem
        family = FAMILY_BY_NAME[instance.family]
        siblings = [p for p in family.grid if family.visible(p) == family.visible(instance.params)]
        assert len(siblings) == 5, instance.family
        assert {family.build(*p).statement for p in siblings} == {problem.statement}
        hidden = instance.params[-1]
        for word in hidden if isinstance(hidden, tuple) else (hidden,):
            assert word not in problem.statement.upper().split(), problem.name
        readings = statement_readings(instance)
        references = [reference for reference, _ in readings]
        assert len(readings) == 5 and problem.solutions[0] in references
        public = len(problem.public_tests)
        for reference in references:
            failure = _first_failure(problem, reference)
            if reference == problem.solutions[0]:
                assert failure is None, problem.name
            else:
                assert failure is not None and failure < public, problem.name
                assert reference in problem.incorrect_solutions


def test_readings_of_a_statement_that_says_everything_are_its_own():
    for instance in toy_instances("train", 100, seed=7):
        if not FAMILY_BY_NAME[instance.family].hidden:
            problem = instance.problem
            assert statement_readings(instance) == (
                (problem.solutions[0], problem.incorrect_solutions),
            )


def test_test_only_families_appear_only_in_test():
    test_only = {f.name for f in FAMILIES if f.test_only}
    assert 2 <= len(test_only) < len(FAMILIES)
    seen = {s: {i.family for i in toy_instances(s, 400)} for s in SPLITS}
    assert seen["train"] == seen["valid"] == {f.name for f in FAMILIES} - test_only
    assert seen["test"] == {f.name for f in FAMILIES}
    assert {f.name for f in families("test")} == seen["test"]


def test_every_problem_has_the_promised_shape():
    for split in SPLITS:
        instances = toy_instances(split, 500, seed=5)
        names = [i.problem.name for i in instances]
        assert len(set(names)) == len(names), f"{split}: problem names repeat"
        for index, instance in enumerate(instances):
            problem = instance.problem
            assert problem.name == f"toy/{instance.family}/{index}"
            assert problem.source == "toy" and problem.public_tests.kind == STDIO
            assert 1 <= len(problem.public_tests) <= 2, problem.name
            assert len(problem.private_tests) == PRIVATE_TESTS >= 10, problem.name
            inputs = problem.all_tests.inputs
            assert len(set(inputs)) == len(inputs), f"{problem.name}: a test repeats"
            assert (problem.time_limit_s, problem.memory_mb) == (TIME_LIMIT_S, MEMORY_MB)
            assert len(problem.solutions) == 1
            readings = len(statement_readings(instance)) - 1  # the other readings
            bugs = len(problem.incorrect_solutions) - readings
            assert MIN_BUGS <= bugs <= MAX_BUGS, problem.name
            assert len(set(problem.incorrect_solutions)) == len(problem.incorrect_solutions)
            assert problem.solutions[0] not in problem.incorrect_solutions


def test_family_of_reads_the_name():
    for instance in toy_instances("valid", 50):
        assert family_of(instance.problem.name) == instance.family
    for name in ("HumanEval/0", "1548_A. Web of Lies", "toy/count_equal"):
        with pytest.raises(ValueError, match="is not a toy problem's name"):
            family_of(name)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="unknown toy split 'dev'; use one of train"):
        generate_toy("dev", 3)
    with pytest.raises(ValueError, match="count must be >= 0"):
        generate_toy("train", -1)


def test_two_thousand_train_problems_take_well_under_two_seconds():
    start = time.process_time()  # CPU time: other processes on the machine do not count
    problems = generate_toy("train", 2000, seed=9)
    assert len(problems) == 2000
    assert time.process_time() - start < 2.0


def _run_in_process(program: str, stdin: str) -> str | None:
    """What `program` prints on `stdin`, or None if it raises."""
    out, saved = io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(program, "<toy program>", "exec"), {"__name__": "__main__"})
    except Exception:
        return None
    finally:
        sys.stdin = saved
    return out.getvalue()


def _first_failure(problem, program: str) -> int | None:
    """Index of the first test of `problem` that `program` fails in-process, or None."""
    tests = problem.all_tests
    for index, (stdin, expected) in enumerate(zip(tests.inputs, tests.outputs, strict=True)):
        printed = _run_in_process(program, stdin)
        if printed is None or not outputs_match(expected, printed):
            return index
    return None


def test_programs_do_what_the_generator_predicts():
    """In-process, on many problems: the reference passes, each buggy program fails, and
    buggy programs include both kinds (caught by a public test, or only by a private one)."""
    caught_by = {"public": 0, "private": 0}
    for split in SPLITS:
        for problem in generate_toy(split, 200, seed=2):
            assert _first_failure(problem, problem.solutions[0]) is None, problem.name
            for program in problem.incorrect_solutions:
                failure = _first_failure(problem, program)
                assert failure is not None, f"{problem.name}: a buggy program passes:\n{program}"
                caught_by["public" if failure < len(problem.public_tests) else "private"] += 1
    assert min(caught_by.values()) >= 0.05 * sum(caught_by.values()), caught_by


def _covering_sample(split: str, per_family: int) -> list:
    """The first `per_family` problems of each family in `split`."""
    sample, counts = [], {}
    for instance in toy_instances(split, 300, seed=4):
        if counts.get(instance.family, 0) < per_family:
            counts[instance.family] = counts.get(instance.family, 0) + 1
            sample.append(instance.problem)
    assert set(counts) == {f.name for f in families(split)}
    return sample


def test_programs_in_the_real_sandbox(sandbox):
    """Every reference passes all of its tests; every buggy program fails one, some on a
    public test (feedback shows it) and some only on a private one."""
    problems = [p for split in SPLITS for p in _covering_sample(split, per_family=3)]
    references = sandbox.run_many([p.job(p.solutions[0], p.all_tests) for p in problems])
    for problem, judgement in zip(problems, references, strict=True):
        verdicts = [t.verdict for t in judgement.tests]
        assert judgement.passed, f"{problem.name}: reference fails: {verdicts}"
    buggy = [(p, program) for p in problems for program in p.incorrect_solutions]
    judgements = sandbox.run_many(
        [p.job(program, p.all_tests, stop_on_first_failure=True) for p, program in buggy]
    )
    caught_by = {"public": 0, "private": 0}
    for (problem, program), judgement in zip(buggy, judgements, strict=True):
        assert not judgement.passed, f"{problem.name}: a buggy program passes:\n{program}"
        failure = len(judgement.tests) - 1  # the run stopped at the first failing test
        caught_by["public" if failure < len(problem.public_tests) else "private"] += 1
    assert min(caught_by.values()) >= 0.05 * len(buggy), caught_by
