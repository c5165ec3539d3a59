"""Toy contests: seeded stdin/stdout problems that a tiny model can learn to solve.

Each problem is an instance of a FAMILY (a templated task such as "sum of the numbers
greater than K") with its PARAMETERS (K = 3) and seeded random tests. A family is one small
function that, given the parameters, returns the statement, how test inputs are drawn, the
reference program and 2-4 plausible buggy programs (off-by-one, wrong operator, a missing
edge case, wrong order). All programs share one style: read the input with a fixed header,
then compute and print in a few lines.

UNSAID DETAILS. Some families' statements leave one detail open among five plausible
readings: the word to print when nothing qualifies (NONE, EMPTY, ...), or the words that
answer a yes/no question (YES/NO, TRUE/FALSE, ...). The detail is the family's last
parameter (`Family.hidden`), absent from the statement; the first public test is one
where the readings print different things, so a first attempt must guess, and the
execution feedback (the failing input, the expected and the actual output) tells which
reading is right, while another problem's feedback does not. The references of the other
readings are kept among the buggy programs; each fails a public test by construction.

Every program comes with a pure Python function that computes what it prints (or raises
where the program raises). Expected outputs are the reference function's; a buggy
variant is kept only if its function's output fails the judge's comparison
(`sandbox.outputs_match`) on at least one test, so each kept buggy program fails a test
by construction. `tests/test_toy.py` checks the programs themselves, against those
functions and through the real sandbox.

No family depends on letter case: the judge compares tokens ignoring case, as
CodeContests' tester does, so an "uppercase the string" task could not tell right from wrong.

Splits. Each family's parameter combinations are partitioned once, independently of the
seed, into `train`, `valid` and `test` (about 80/10/10%), so an instance's identity
(family, parameters) belongs to one split only (the readings of one statement go to the
same split: no statement is in two), whatever seeds the splits are drawn with.
TEST-ONLY families (`Family.test_only`) appear only in `test`, to measure generalisation to
kinds of problems never trained on. Within a split, instances with the same family,
parameters and test inputs are drawn once at most.

    problems = generate_toy("train", 2000, seed=0)  # deterministic, prefix-stable
    problems = generate_toy("test", 100)            # held-out parameters + test-only families
"""

from __future__ import annotations

import functools
import operator
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from typing import ClassVar

from sandbox import STDIO, TestSet, outputs_match

from .records import Problem

SPLITS = ("train", "valid", "test")
"""The splits `generate_toy` draws from; their parameter combinations are disjoint."""

HELD_OUT_FRACTION = 0.1
"""Share of each (not test-only) family's parameter combinations held out for `valid`, and
again for `test` (at least one combination each)."""

PRIVATE_TESTS = 12
"""Private tests per problem: the family's edge cases, then random inputs."""

MIN_BUGS, MAX_BUGS = 2, 4
"""How many buggy programs each problem keeps (among those that fail one of its tests)."""

TIME_LIMIT_S = 2.0
"""CPU seconds per test, for every toy problem."""

MEMORY_MB = 256
"""Address space per test, for every toy problem."""

_DRAW_ATTEMPTS = 50
"""Test draws per instance before giving up on getting enough distinct inputs or bugs."""


# ---------------------------------------------------------------------------------------
# Programs and how their inputs are drawn. Each input kind (`_Lists`, `_Pairs`, `_Strings`,
# `_Number`) has the same interface: `header` (the program lines that read the input),
# `describe()` (the statement's Input section), `render(*case)` (a parsed input as stdin
# text), and three ways to draw a parsed input: `typical` (public tests, small and
# readable in feedback), `edges` (the kind's edge cases) and `random` (the rest).


@dataclass(frozen=True)
class _Variant:
    """One program (after the input header) and what it prints."""

    body: str
    """The lines after the family's input header, ending with a newline."""
    run: Callable[..., object]
    """What the program passes to `print`, from the parsed input (`str()` gives the text);
    raises where the program would raise."""


def _spaced(values) -> str:
    """What `print(*values)` prints."""
    return " ".join(map(str, values))


def _pick(rng: random.Random, hints, draw: Callable[[], object]):
    """One of `hints` a third of the time (when there are any), else `draw()`."""
    return rng.choice(hints) if hints and rng.random() < 1 / 3 else draw()


@dataclass(frozen=True)
class _Lists:
    """Input: a line with n, then a line of n integers. Parsed as `(xs,)`."""

    lo: int = -20
    """Smallest value."""
    hi: int = 20
    """Largest value."""
    min_n: int = 1
    """Fewest numbers."""
    max_n: int = 10
    """Most numbers."""
    hints: tuple[int, ...] = ()
    """Values drawn often (the parameter and its neighbours), so boundary bugs show."""

    header: ClassVar[str] = "n = int(input())\nxs = list(map(int, input().split()))\n"
    """The program lines that read the input."""

    def describe(self) -> str:
        return (
            f"The first line contains an integer n ({self.min_n} <= n <= {self.max_n}). "
            f"The second line contains n integers between {self.lo} and {self.hi}."
        )

    def render(self, xs: list[int]) -> str:
        return f"{len(xs)}\n{_spaced(xs)}\n"

    def _values(self, rng: random.Random, n: int) -> tuple:
        hints = [h for h in self.hints if self.lo <= h <= self.hi]
        return ([_pick(rng, hints, lambda: rng.randint(self.lo, self.hi)) for _ in range(n)],)

    def typical(self, rng: random.Random) -> tuple:
        low = max(self.min_n, 3)
        return self._values(rng, rng.randint(low, min(self.max_n, low + 3)))

    def random(self, rng: random.Random) -> tuple:
        return self._values(rng, rng.randint(self.min_n, self.max_n))

    def edges(self, rng: random.Random) -> list[tuple]:
        n = rng.randint(self.min_n, self.max_n)
        cases = [self._values(rng, self.min_n), self._values(rng, self.max_n), ([0] * n,)]
        if self.lo < 0:
            cases.append(([rng.randint(self.lo, -1) for _ in range(n)],))
        hints = [h for h in self.hints if self.lo <= h <= self.hi]
        if hints:
            cases.append(([rng.choice(hints)] * n,))
        return cases


@dataclass(frozen=True)
class _Pairs:
    """Input: a line with n, then two lines of n integers. Parsed as `(a, b)`."""

    lo: int = -9
    """Smallest value."""
    hi: int = 9
    """Largest value."""
    max_n: int = 10
    """Most numbers per line."""
    gaps: tuple[int, ...] = ()
    """Differences a_i - b_i drawn often, so boundary bugs show."""

    header: ClassVar[str] = (
        "n = int(input())\n"
        "a = list(map(int, input().split()))\n"
        "b = list(map(int, input().split()))\n"
    )
    """The program lines that read the input."""

    def describe(self) -> str:
        return (
            f"The first line contains an integer n (1 <= n <= {self.max_n}). The second line "
            f"contains n integers a_1, ..., a_n and the third line n integers b_1, ..., b_n, "
            f"all between {self.lo} and {self.hi}."
        )

    def render(self, a: list[int], b: list[int]) -> str:
        return f"{len(a)}\n{_spaced(a)}\n{_spaced(b)}\n"

    def _pair(self, rng: random.Random) -> tuple[int, int]:
        x = rng.randint(self.lo, self.hi)
        gaps = [g for g in self.gaps if self.lo <= x - g <= self.hi]
        if gaps and rng.random() < 1 / 3:
            return x, x - rng.choice(gaps)
        return x, rng.randint(self.lo, self.hi)

    def _lists(self, rng: random.Random, n: int) -> tuple:
        pairs = [self._pair(rng) for _ in range(n)]
        return [x for x, _ in pairs], [y for _, y in pairs]

    def typical(self, rng: random.Random) -> tuple:
        return self._lists(rng, rng.randint(3, min(self.max_n, 6)))

    def random(self, rng: random.Random) -> tuple:
        return self._lists(rng, rng.randint(1, self.max_n))

    def edges(self, rng: random.Random) -> list[tuple]:
        n = rng.randint(1, self.max_n)
        same = [rng.randint(self.lo, self.hi) for _ in range(n)]
        return [
            self._lists(rng, 1),
            self._lists(rng, self.max_n),
            ([0] * n, [0] * n),
            (same, list(same)),
            ([rng.randint(self.lo, -1) for _ in range(n)], [rng.randint(0, self.hi)] * n),
        ]


@dataclass(frozen=True)
class _Strings:
    """Input: one line, a string of lowercase letters. Parsed as `(s,)`."""

    min_len: int = 1
    """Shortest string."""
    max_len: int = 12
    """Longest string."""
    hints: str = ""
    """Letters drawn often (those the task is about)."""

    header: ClassVar[str] = "s = input()\n"
    """The program line that reads the input."""

    def describe(self) -> str:
        return (
            f"The only line contains a string s of lowercase English letters, of length "
            f"between {self.min_len} and {self.max_len}."
        )

    def render(self, s: str) -> str:
        return f"{s}\n"

    def _string(self, rng: random.Random, length: int) -> tuple:
        letters = string.ascii_lowercase
        return (
            "".join(_pick(rng, self.hints, lambda: rng.choice(letters)) for _ in range(length)),
        )

    def typical(self, rng: random.Random) -> tuple:
        low = max(self.min_len, 4)
        return self._string(rng, rng.randint(low, min(self.max_len, low + 4)))

    def random(self, rng: random.Random) -> tuple:
        return self._string(rng, rng.randint(self.min_len, self.max_len))

    def edges(self, rng: random.Random) -> list[tuple]:
        length = rng.randint(self.min_len, self.max_len)
        letter = rng.choice(self.hints or string.ascii_lowercase)
        others = "".join(c for c in string.ascii_lowercase if c not in self.hints)
        return [
            self._string(rng, self.min_len),
            self._string(rng, self.max_len),
            (letter * length,),
            ("".join(rng.choice(others) for _ in range(length)),),
        ]


@dataclass(frozen=True)
class _Number:
    """Input: one line, an integer n. Parsed as `(n,)`."""

    lo: int = 1
    """Smallest n."""
    hi: int = 50
    """Largest n."""

    header: ClassVar[str] = "n = int(input())\n"
    """The program line that reads the input."""

    def describe(self) -> str:
        return f"The only line contains an integer n ({self.lo} <= n <= {self.hi})."

    def render(self, n: int) -> str:
        return f"{n}\n"

    def typical(self, rng: random.Random) -> tuple:
        return (rng.randint(self.lo + 2, self.lo + 7),)

    def random(self, rng: random.Random) -> tuple:
        return (rng.randint(self.lo, self.hi),)

    def edges(self, rng: random.Random) -> list[tuple]:
        return [(self.lo,), (self.lo + 1,), (self.hi - 1,), (self.hi,)]


_Inputs = _Lists | _Pairs | _Strings | _Number


@dataclass(frozen=True)
class _Spec:
    """Everything about one family at one parameter combination, except the tests."""

    task: str
    """What to compute, in a sentence or two."""
    inputs: _Inputs
    """The input format: its statement text, its program header, how tests are drawn."""
    output: str
    """What to print, e.g. `Print one integer.`."""
    reference: _Variant
    """The correct program."""
    bugs: tuple[_Variant, ...]
    """Plausible buggy programs, most instructive first; those that fail no test are dropped."""
    readings: tuple[_Variant, ...] = ()
    """A statement with an unsaid detail: the reference under each of its other readings."""
    revealing: Callable[[random.Random], list[tuple]] | None = None
    """A statement with an unsaid detail: draws the parsed inputs that start its public
    tests, where the readings print different things."""

    @property
    def statement(self) -> str:
        return f"{self.task}\n\nInput\n{self.inputs.describe()}\n\nOutput\n{self.output}\n"

    def program(self, variant: _Variant) -> str:
        return self.inputs.header + variant.body


# ---------------------------------------------------------------------------------------
# The families, one function each; parameters come first in their statement and program.

_COMPARE = {
    ">": ("greater than", operator.gt),
    "<": ("less than", operator.lt),
    ">=": ("at least", operator.ge),
    "<=": ("at most", operator.le),
    "==": ("equal to", operator.eq),
    "!=": ("different from", operator.ne),
}
"""Comparison operators in programs: their words in statements and their functions."""

_STRICTNESS_FLIP = {">": ">=", ">=": ">", "<": "<=", "<=": "<"}
_DIRECTION_FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">="}
_EXTREMES = {"largest": max, "smallest": min}
_FUNCTION = {"largest": "max", "smallest": "min"}
_OTHER = {"largest": "smallest", "smallest": "largest", "max": "min", "min": "max"}
_ORDER = {"smallest": "ascending", "largest": "descending"}


def _ordinal(k: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(k % 10 if k > 20 else k, "th")
    return f"{k}{suffix}"


def _sorted_text(which: str) -> str:
    return "sorted(xs)" if which == "smallest" else "sorted(xs, reverse=True)"


def _scaled_sum(k: int) -> _Spec:
    return _Spec(
        task=f"You are given n integers. Print their sum multiplied by {k}.",
        inputs=_Lists(),
        output="Print one integer.",
        reference=_Variant(f"print(sum(xs) * {k})\n", lambda xs: sum(xs) * k),
        bugs=(
            _Variant(f"print(sum(xs) + {k})\n", lambda xs: sum(xs) + k),
            _Variant(f"print(sum(xs[1:]) * {k})\n", lambda xs: sum(xs[1:]) * k),
            _Variant(f"print(sum(xs[:n - 1]) * {k})\n", lambda xs: sum(xs[: len(xs) - 1]) * k),
        ),
    )


def _filtered_sum(op: str, k: int) -> _Spec:
    def summed(o: str) -> _Variant:
        test = _COMPARE[o][1]
        return _Variant(
            f"print(sum(x for x in xs if x {o} {k}))\n",
            lambda xs: sum(x for x in xs if test(x, k)),
        )

    test = _COMPARE[op][1]
    return _Spec(
        task=(
            f"You are given n integers. Print the sum of the numbers that are "
            f"{_COMPARE[op][0]} {k} (0 if there are none)."
        ),
        inputs=_Lists(hints=(k - 1, k, k + 1)),
        output="Print one integer.",
        reference=summed(op),
        bugs=(
            summed(_STRICTNESS_FLIP[op]),
            summed(_DIRECTION_FLIP[op]),
            _Variant(
                f"print(sum(1 for x in xs if x {op} {k}))\n",
                lambda xs: sum(1 for x in xs if test(x, k)),
            ),
        ),
    )


def _count_equal(op: str, v: int) -> _Spec:
    def counted(o: str) -> _Variant:
        test = _COMPARE[o][1]
        return _Variant(
            f"print(sum(1 for x in xs if x {o} {v}))\n",
            lambda xs: sum(1 for x in xs if test(x, v)),
        )

    test = _COMPARE[op][1]
    return _Spec(
        task=f"You are given n integers. Print how many of them are {_COMPARE[op][0]} {v}.",
        inputs=_Lists(lo=-9, hi=9, hints=(v,)),
        output="Print one integer.",
        reference=counted(op),
        bugs=(
            counted("!=" if op == "==" else "=="),
            counted(">=" if op == "==" else ">"),
            _Variant(
                f"print(sum(x for x in xs if x {op} {v}))\n",
                lambda xs: sum(x for x in xs if test(x, v)),
            ),
        ),
    )


def _count_divisible(d: int, divisible: bool) -> _Spec:
    def counted(condition: str, test: Callable[[int], bool]) -> _Variant:
        return _Variant(
            f"print(sum(1 for x in xs if {condition}))\n",
            lambda xs: sum(1 for x in xs if test(x)),
        )

    sign, other = ("==", "!=") if divisible else ("!=", "==")
    return _Spec(
        task=(
            f"You are given n integers. Print how many of them are "
            f"{'' if divisible else 'not '}divisible by {d}."
        ),
        inputs=_Lists(lo=-30, hi=30, hints=tuple(x for x in range(-30, 31) if x % d == 0)),
        output="Print one integer.",
        reference=counted(f"x % {d} {sign} 0", lambda x: (x % d == 0) == divisible),
        bugs=(
            counted(f"x % {d} {other} 0", lambda x: (x % d == 0) != divisible),
            counted(f"{d} % x {sign} 0", lambda x: (d % x == 0) == divisible),
            counted(f"x // {d} {sign} 0", lambda x: (x // d == 0) == divisible),
        ),
    )


def _letter_count(c: str) -> _Spec:
    return _Spec(
        task=f"You are given a string s. Print how many times the letter {c} appears in s.",
        inputs=_Strings(hints=c),
        output="Print one integer.",
        reference=_Variant(f'print(s.count("{c}"))\n', lambda s: s.count(c)),
        bugs=(
            _Variant(f'print(s.find("{c}"))\n', lambda s: s.find(c)),
            _Variant(f'print(len(s) - s.count("{c}"))\n', lambda s: len(s) - s.count(c)),
            _Variant(f'print(int("{c}" in s))\n', lambda s: int(c in s)),
        ),
    )


def _replace_letter(a: str, b: str) -> _Spec:
    return _Spec(
        task=(
            f"You are given a string s. Replace every letter {a} in s with the letter {b} "
            f"and print the result."
        ),
        inputs=_Strings(hints=a + b),
        output="Print one string.",
        reference=_Variant(f'print(s.replace("{a}", "{b}"))\n', lambda s: s.replace(a, b)),
        bugs=(
            _Variant(f'print(s.replace("{a}", "{b}", 1))\n', lambda s: s.replace(a, b, 1)),
            _Variant(f'print(s.replace("{b}", "{a}"))\n', lambda s: s.replace(b, a)),
            _Variant(f'print(s.replace("{a}", ""))\n', lambda s: s.replace(a, "")),
        ),
    )


def _bounded_extreme(which: str, op: str, k: int) -> _Spec:
    def chosen(o: str, shown: str, run: Callable[[list[int], list[int]], object]) -> _Variant:
        """`ys` holds the numbers `x {o} k`; the program prints `shown`, `run(ys, xs)`."""
        test = _COMPARE[o][1]
        return _Variant(
            f"ys = [x for x in xs if x {o} {k}]\nprint({shown})\n",
            lambda xs: run([x for x in xs if test(x, k)], xs),
        )

    f, g = _FUNCTION[which], _FUNCTION[_OTHER[which]]
    best, other = _EXTREMES[which], _EXTREMES[_OTHER[which]]
    return _Spec(
        task=(
            f"You are given n integers. Print the {which} of the numbers that are "
            f"{_COMPARE[op][0]} {k}, or NONE if there is no such number."
        ),
        inputs=_Lists(hints=(k - 1, k, k + 1)),
        output="Print one integer, or NONE.",
        reference=chosen(
            op, f'{f}(ys) if ys else "NONE"', lambda ys, xs: best(ys) if ys else "NONE"
        ),
        bugs=(
            chosen(op, f"{f}(ys)", lambda ys, xs: best(ys)),
            chosen(
                _STRICTNESS_FLIP[op],
                f'{f}(ys) if ys else "NONE"',
                lambda ys, xs: best(ys) if ys else "NONE",
            ),
            chosen(op, f'{g}(ys) if ys else "NONE"', lambda ys, xs: other(ys) if ys else "NONE"),
            chosen(op, f'{f}(xs) if ys else "NONE"', lambda ys, xs: best(xs) if ys else "NONE"),
        ),
    )


def _kth_element(which: str, k: int) -> _Spec:
    reverse = which == "largest"

    def indexed(source: str, index: int, ordered: Callable[[list[int]], list[int]]) -> _Variant:
        return _Variant(f"print({source}[{index}])\n", lambda xs: ordered(xs)[index])

    return _Spec(
        task=(
            f"You are given n integers. Print the {_ordinal(k)} {which} of them. "
            f"Equal numbers are counted separately."
        ),
        inputs=_Lists(lo=-9, hi=9, min_n=k, max_n=max(10, k + 4)),
        output="Print one integer.",
        reference=indexed(_sorted_text(which), k - 1, lambda xs: sorted(xs, reverse=reverse)),
        bugs=(
            indexed(_sorted_text(which), k, lambda xs: sorted(xs, reverse=reverse)),
            indexed(_sorted_text(_OTHER[which]), k - 1, lambda xs: sorted(xs, reverse=not reverse)),
            indexed(
                _sorted_text(which).replace("xs", "set(xs)"),
                k - 1,
                lambda xs: sorted(set(xs), reverse=reverse),
            ),
            indexed("xs", k - 1, lambda xs: xs),
        ),
    )


def _top_k(which: str, k: int) -> _Spec:
    reverse = which == "largest"

    def first(source: str, count: int, ordered, star: bool = True) -> _Variant:
        shown = "*" if star else ""
        return _Variant(
            f"print({shown}{source}[:{count}])\n",
            lambda xs: _spaced(ordered(xs)[:count]) if star else ordered(xs)[:count],
        )

    return _Spec(
        task=f"You are given n integers. Print the {k} {which} of them in {_ORDER[which]} order.",
        inputs=_Lists(min_n=k, max_n=max(10, k + 4)),
        output=f"Print {k} integers separated by spaces.",
        reference=first(_sorted_text(which), k, lambda xs: sorted(xs, reverse=reverse)),
        bugs=(
            first(_sorted_text(which), k, lambda xs: sorted(xs, reverse=reverse), star=False),
            first(_sorted_text(which), k - 1, lambda xs: sorted(xs, reverse=reverse)),
            first(_sorted_text(_OTHER[which]), k, lambda xs: sorted(xs, reverse=not reverse)),
            first("xs", k, lambda xs: xs),
        ),
    )


def _rotate_string(side: str, k: int) -> _Spec:
    def rotated(cut: int) -> _Variant:
        return _Variant(f"print(s[{cut}:] + s[:{cut}])\n", lambda s: s[cut:] + s[:cut])

    cut = k if side == "first" else -k
    return _Spec(
        task=(
            f"You are given a string s. Move its {side} {k} letters to its "
            f"{'end' if side == 'first' else 'front'} and print the result."
        ),
        inputs=_Strings(min_len=k, max_len=max(12, k + 4)),
        output="Print one string.",
        reference=rotated(cut),
        bugs=(
            rotated(-cut),
            rotated(cut + 1 if cut > 0 else cut - 1),
            _Variant(f"print(s[:{cut}] + s[{cut}:])\n", lambda s: s[:cut] + s[cut:]),
        ),
    )


def _pair_compare(op: str, k: int) -> _Spec:
    def counted(o: str, gap: str = "x - y") -> _Variant:
        test, sign = _COMPARE[o][1], 1 if gap == "x - y" else -1
        return _Variant(
            f"print(sum(1 for x, y in zip(a, b) if {gap} {o} {k}))\n",
            lambda a, b: sum(1 for x, y in zip(a, b, strict=True) if test(sign * (x - y), k)),
        )

    test = _COMPARE[op][1]
    return _Spec(
        task=(
            f"You are given two lists a and b of n integers each. Print how many positions i "
            f"have a_i - b_i {_COMPARE[op][0]} {k}."
        ),
        inputs=_Pairs(gaps=(k - 1, k, k + 1)),
        output="Print one integer.",
        reference=counted(op),
        bugs=(
            counted(_STRICTNESS_FLIP[op]),
            counted(op, gap="y - x"),
            _Variant(
                f"print(sum(x - y for x, y in zip(a, b) if x - y {op} {k}))\n",
                lambda a, b: sum(x - y for x, y in zip(a, b, strict=True) if test(x - y, k)),
            ),
        ),
    )


def _window_sum(which: str, k: int) -> _Spec:
    def best(f: str, width: int, stop: int) -> _Variant:
        pick = max if f == "max" else min
        return _Variant(
            f"print({f}(sum(xs[i:i + {width}]) for i in range(n - {stop})))\n",
            lambda xs: pick(sum(xs[i : i + width]) for i in range(len(xs) - stop)),
        )

    f = _FUNCTION[which]
    return _Spec(
        task=f"You are given n integers. Print the {which} sum of {k} consecutive numbers.",
        inputs=_Lists(min_n=k, max_n=max(10, k + 4)),
        output="Print one integer.",
        reference=best(f, k, k - 1),
        bugs=(
            best(f, k, k),
            best(f, k - 1, k - 1),
            best(_OTHER[f], k, k - 1),
            _Variant(f"print({f}(xs) * {k})\n", lambda xs: _EXTREMES[which](xs) * k),
        ),
    )


def _stairs_program(k: int, m: int, guard: bool = True, mod: bool = True, full: bool = True):
    """A stairs variant: `guard` clamps the window at step 0, `mod` takes the modulo, `full`
    fills every step (else the loop stops one step short)."""
    start = f"max(0, i - {k})" if guard else f"i - {k}"
    total = f"sum(ways[{start}:i])" + (f" % {m}" if mod else "")
    body = (
        f"ways = [1] + [0] * n\nfor i in range(1, {'n + 1' if full else 'n'}):\n"
        f"    ways[i] = {total}\nprint(ways[n])\n"
    )

    def run(n: int) -> int:
        ways = [1] + [0] * n
        for i in range(1, n + 1 if full else n):
            window = ways[max(0, i - k) : i] if guard else ways[i - k : i]
            ways[i] = sum(window) % m if mod else sum(window)
        return ways[n]

    return _Variant(body, run)


def _stairs(k: int, m: int) -> _Spec:
    return _Spec(
        task=(
            f"A staircase has n steps. In one move you climb between 1 and {k} steps. "
            f"Print the number of ways to climb to the top, modulo {m}."
        ),
        inputs=_Number(),
        output="Print one integer.",
        reference=_stairs_program(k, m),
        bugs=(
            _stairs_program(k, m, guard=False),
            _stairs_program(k, m, mod=False),
            _stairs_program(k, m, full=False),
        ),
    )


def _argmax_position(which: str, base: int) -> _Spec:
    def position(f: str, b: int) -> _Variant:
        pick = max if f == "max" else min
        return _Variant(
            f"print(xs.index({f}(xs)){' + 1' if b else ''})\n",
            lambda xs: xs.index(pick(xs)) + b,
        )

    f = _FUNCTION[which]
    return _Spec(
        task=(
            f"You are given n integers. Print the position of the first occurrence of the "
            f"{which} number, where positions are numbered from {base}."
        ),
        inputs=_Lists(lo=-9, hi=9),
        output="Print one integer.",
        reference=position(f, base),
        bugs=(
            position(f, 1 - base),
            position(_OTHER[f], base),
            _Variant(f"print({f}(xs))\n", lambda xs: _EXTREMES[which](xs)),
        ),
    )


def _max_subarray(which: str) -> _Spec:
    f = _FUNCTION[which]
    pick = _EXTREMES[which]

    def kadane(xs: list[int], zero_start: bool = False, restart: bool = True) -> int:
        best = cur = 0 if zero_start else xs[0]
        for x in xs if zero_start else xs[1:]:
            cur = pick(x, cur + x) if restart else cur + x
            best = pick(best, cur)
        return best

    def last_block(xs: list[int]) -> int:
        cur = xs[0]
        for x in xs[1:]:
            cur = pick(x, cur + x)
        return cur

    return _Spec(
        task=(
            f"You are given n integers. Print the {which} sum of a non-empty block of "
            f"consecutive numbers."
        ),
        inputs=_Lists(),
        output="Print one integer.",
        reference=_Variant(
            f"best = cur = xs[0]\nfor x in xs[1:]:\n    cur = {f}(x, cur + x)\n"
            f"    best = {f}(best, cur)\nprint(best)\n",
            kadane,
        ),
        bugs=(
            _Variant(
                f"best = cur = 0\nfor x in xs:\n    cur = {f}(x, cur + x)\n"
                f"    best = {f}(best, cur)\nprint(best)\n",
                lambda xs: kadane(xs, zero_start=True),
            ),
            _Variant(
                f"best = cur = xs[0]\nfor x in xs[1:]:\n    cur = cur + x\n"
                f"    best = {f}(best, cur)\nprint(best)\n",
                lambda xs: kadane(xs, restart=False),
            ),
            _Variant(
                f"cur = xs[0]\nfor x in xs[1:]:\n    cur = {f}(x, cur + x)\nprint(cur)\n",
                last_block,
            ),
        ),
    )


_COMBINE = {
    "+": ("a_i + b_i", "x + y", operator.add),
    "-": ("a_i - b_i", "x - y", operator.sub),
    "*": ("a_i * b_i", "x * y", operator.mul),
    "max": ("the larger of a_i and b_i", "max(x, y)", max),
    "min": ("the smaller of a_i and b_i", "min(x, y)", min),
}
"""Element-wise operations: words, program expression, function."""

_COMBINE_SWAP = {"+": "-", "-": "+", "*": "+", "max": "min", "min": "max"}


def _elementwise(op: str) -> _Spec:
    words, expression, combine = _COMBINE[op]
    _, wrong_expression, wrong = _COMBINE[_COMBINE_SWAP[op]]
    pairs = "for x, y in zip(a, b)"
    return _Spec(
        task=(
            f"You are given two lists a and b of n integers each. For every i from 1 to n, "
            f"print {words}."
        ),
        inputs=_Pairs(),
        output="Print n integers separated by spaces.",
        reference=_Variant(
            f"print(*[{expression} {pairs}])\n",
            lambda a, b: _spaced(combine(x, y) for x, y in zip(a, b, strict=True)),
        ),
        bugs=(
            _Variant(
                f"print([{expression} {pairs}])\n",
                lambda a, b: [combine(x, y) for x, y in zip(a, b, strict=True)],
            ),
            _Variant(
                f"print(*[{wrong_expression} {pairs}])\n",
                lambda a, b: _spaced(wrong(x, y) for x, y in zip(a, b, strict=True)),
            ),
            _Variant(
                f"print(sum({expression} {pairs}))\n",
                lambda a, b: sum(combine(x, y) for x, y in zip(a, b, strict=True)),
            ),
        ),
    )


_MARKERS = ("NONE", "EMPTY", "NOTHING", "NULL", "NIL")
"""What a program may print when nothing qualifies, where the statement leaves it unsaid."""
_ANSWERS = (("YES", "NO"), ("TRUE", "FALSE"), ("OK", "FAIL"), ("ON", "OFF"), ("HIT", "MISS"))
"""The words that may answer a yes/no question, where the statement leaves them unsaid."""
_SAY_NONE = "If there is none, print the word that says so."
_SAY_ANSWER = "Answer with a word."
_REVEAL_ATTEMPTS = 1000


def _typical_where(inputs: _Lists, rng: random.Random, holds: Callable[[list[int]], bool]):
    """A typical parsed input whose list satisfies `holds` (drawn until one does)."""
    for _ in range(_REVEAL_ATTEMPTS):
        case = inputs.typical(rng)
        if holds(*case):
            return case
    raise RuntimeError(f"toy: no typical input of {inputs} satisfies the revealing condition")


def _or_marker(
    task: str, inputs: _Lists, output: str, program, none: Callable, marker: str, bugs
) -> _Spec:
    """A family whose statement leaves unsaid what to print when nothing qualifies:
    `program(word)` is the reference printing `word` then, `none(xs)` says whether nothing
    qualifies in `xs`, `bugs(word)` the buggy programs."""
    return _Spec(
        task=f"{task} {_SAY_NONE}",
        inputs=inputs,
        output=output,
        reference=program(marker),
        bugs=bugs(marker),
        readings=tuple(program(word) for word in _MARKERS if word != marker),
        revealing=lambda rng: [_typical_where(inputs, rng, none)],
    )


def _answer(
    task: str, inputs: _Lists, program, holds: Callable, words: tuple[str, str], bugs
) -> _Spec:
    """A yes/no family whose statement leaves the answer's words unsaid: `program(yes, no)`
    is the reference, `holds(xs)` the question's answer, `bugs(yes, no)` the buggy programs."""
    return _Spec(
        task=f"{task} {_SAY_ANSWER}",
        inputs=inputs,
        output="Print one word.",
        reference=program(*words),
        bugs=bugs(*words),
        readings=tuple(program(*other) for other in _ANSWERS if other != words),
        revealing=lambda rng: [
            _typical_where(inputs, rng, holds),
            _typical_where(inputs, rng, lambda xs: not holds(xs)),
        ],
    )


def _select_or_marker(op: str, k: int, marker: str) -> _Spec:
    def selected(o: str, word: str | None) -> _Variant:
        """The numbers `x {o} k`, or `word` if none (None: an empty line)."""
        test = _COMPARE[o][1]
        shown = "*ys" if word is None else f'*ys if ys else ["{word}"]'

        def run(xs: list[int]) -> str:
            ys = [x for x in xs if test(x, k)]
            return _spaced(ys) if ys or word is None else word

        return _Variant(f"ys = [x for x in xs if x {o} {k}]\nprint({shown})\n", run)

    test = _COMPARE[op][1]
    return _or_marker(
        f"You are given n integers. Print, in their order, the numbers that are "
        f"{_COMPARE[op][0]} {k}.",
        _Lists(hints=(k - 1, k, k + 1)),
        "Print the numbers separated by spaces, or one word.",
        lambda word: selected(op, word),
        lambda xs: not any(test(x, k) for x in xs),
        marker,
        lambda word: (
            selected(_STRICTNESS_FLIP[op], word),
            selected(_DIRECTION_FLIP[op], word),
            selected(op, None),
        ),
    )


def _first_or_marker(op: str, k: int, marker: str) -> _Spec:
    def picked(o: str, index: int, word: str | None) -> _Variant:
        """The number at `index` among those `x {o} k`, or `word` if none (None: raises)."""
        test = _COMPARE[o][1]
        shown = f"ys[{index}]" if word is None else f'ys[{index}] if ys else "{word}"'

        def run(xs: list[int]) -> object:
            ys = [x for x in xs if test(x, k)]
            return ys[index] if ys or word is None else word

        return _Variant(f"ys = [x for x in xs if x {o} {k}]\nprint({shown})\n", run)

    test = _COMPARE[op][1]
    return _or_marker(
        f"You are given n integers. Print the first of them that is {_COMPARE[op][0]} {k}.",
        _Lists(hints=(k - 1, k, k + 1)),
        "Print one integer, or one word.",
        lambda word: picked(op, 0, word),
        lambda xs: not any(test(x, k) for x in xs),
        marker,
        lambda word: (
            picked(op, -1, word),
            picked(_STRICTNESS_FLIP[op], 0, word),
            picked(op, 0, None),
        ),
    )


def _position_or_marker(v: int, marker: str) -> _Spec:
    def found(shown: str, run: Callable[[list[int]], int], word: str) -> _Variant:
        return _Variant(
            f'print({shown} if {v} in xs else "{word}")\n',
            lambda xs: run(xs) if v in xs else word,
        )

    def first(word: str) -> _Variant:
        return found(f"xs.index({v}) + 1", lambda xs: xs.index(v) + 1, word)

    return _or_marker(
        f"You are given n integers. Print the position of the first occurrence of {v} "
        f"among them, where positions are numbered from 1.",
        _Lists(lo=-9, hi=9, hints=(v,)),
        "Print one integer, or one word.",
        first,
        lambda xs: v not in xs,
        marker,
        lambda word: (
            found(f"xs.index({v})", lambda xs: xs.index(v), word),
            found(f"len(xs) - xs[::-1].index({v})", lambda xs: len(xs) - xs[::-1].index(v), word),
        ),
    )


def _answered(condition: str, holds: Callable[[list[int]], bool], yes: str, no: str) -> _Variant:
    return _Variant(
        f'print("{yes}" if {condition} else "{no}")\n', lambda xs: yes if holds(xs) else no
    )


def _contains_answer(v: int, words: tuple[str, str]) -> _Spec:
    def holds(xs: list[int]) -> bool:
        return v in xs

    return _answer(
        f"You are given n integers. Is the number {v} among them?",
        _Lists(lo=-9, hi=9, hints=(v,)),
        lambda yes, no: _answered(f"{v} in xs", holds, yes, no),
        holds,
        words,
        lambda yes, no: (
            _answered(f"{v} not in xs", lambda xs: v not in xs, yes, no),
            _answered(f"xs[0] == {v}", lambda xs: xs[0] == v, yes, no),
            _answered(f"xs.count({v}) > 1", lambda xs: xs.count(v) > 1, yes, no),
        ),
    )


def _all_answer(op: str, k: int, words: tuple[str, str]) -> _Spec:
    def condition(word: str, o: str) -> tuple[str, Callable[[list[int]], bool]]:
        test, every = _COMPARE[o][1], all if word == "all" else any
        return f"{word}(x {o} {k} for x in xs)", lambda xs: every(test(x, k) for x in xs)

    return _answer(
        f"You are given n integers. Are all of them {_COMPARE[op][0]} {k}?",
        _Lists(hints=(k - 1, k, k + 1)),
        lambda yes, no: _answered(*condition("all", op), yes, no),
        condition("all", op)[1],
        words,
        lambda yes, no: (
            _answered(*condition("any", op), yes, no),
            _answered(*condition("all", _STRICTNESS_FLIP[op]), yes, no),
        ),
    )


def _divisible_answer(d: int, words: tuple[str, str]) -> _Spec:
    def holds(xs: list[int]) -> bool:
        return sum(xs) % d == 0

    return _answer(
        f"You are given n integers. Is their sum divisible by {d}?",
        _Lists(),
        lambda yes, no: _answered(f"sum(xs) % {d} == 0", holds, yes, no),
        holds,
        words,
        lambda yes, no: (
            _answered(
                f"all(x % {d} == 0 for x in xs)", lambda xs: all(x % d == 0 for x in xs), yes, no
            ),
            _answered(f"sum(xs) // {d} == 0", lambda xs: sum(xs) // d == 0, yes, no),
            _answered(f"sum(xs) % {d} != 0", lambda xs: sum(xs) % d != 0, yes, no),
        ),
    )


# ---------------------------------------------------------------------------------------
# The table of families, and generation


@dataclass(frozen=True)
class Family:
    """One kind of toy problem: a template whose parameters make the instances differ."""

    name: str
    """Short identifier, the middle of problem names: `toy/<family>/<index>`."""
    level: int
    """Difficulty: 1 one pass over a list or string, 2 selection, sorting, slicing or two
    lists, 3 dynamic programming or sliding windows."""
    test_only: bool
    """Only in the `test` split, to measure generalisation to unseen kinds of problems."""
    grid: tuple[tuple, ...]
    """Every parameter combination, in a fixed order; split into train/valid/test."""
    build: Callable[..., _Spec]
    """The instance template (`_Spec`) for one parameter combination."""
    hidden: int = 0
    """How many trailing parameters the statement leaves unsaid (its readings, which a
    public test settles); 0: the statement says everything."""

    def visible(self, params: tuple) -> tuple:
        """The parameters that the statement shows."""
        return params[: len(params) - self.hidden]


def _grid(*axes) -> tuple[tuple, ...]:
    return tuple(product(*axes))


_LETTERS = tuple(string.ascii_lowercase)
_CMP4 = (">", "<", ">=", "<=")
_SIDES = ("largest", "smallest")

FAMILIES: tuple[Family, ...] = (
    Family("scaled_sum", 1, False, _grid((*range(-9, -1), *range(2, 21))), _scaled_sum),
    Family("filtered_sum", 1, False, _grid(_CMP4, range(-5, 10)), _filtered_sum),
    Family("count_equal", 1, False, _grid(("==", "!="), range(-9, 10)), _count_equal),
    Family("count_divisible", 1, False, _grid(range(2, 13), (True, False)), _count_divisible),
    Family("letter_count", 1, False, _grid(_LETTERS), _letter_count),
    Family(
        "replace_letter",
        1,
        False,
        tuple((a, b) for a, b in product(_LETTERS, _LETTERS) if a != b),
        _replace_letter,
    ),
    Family("bounded_extreme", 2, False, _grid(_SIDES, ("<", ">"), range(-5, 10)), _bounded_extreme),
    Family("kth_element", 2, False, _grid(_SIDES, range(1, 11)), _kth_element),
    Family("top_k", 2, False, _grid(_SIDES, range(2, 12)), _top_k),
    Family("rotate_string", 2, False, _grid(("first", "last"), range(1, 13)), _rotate_string),
    Family("pair_compare", 2, False, _grid(_CMP4, range(-5, 6)), _pair_compare),
    Family("window_sum", 3, False, _grid(_SIDES, range(1, 11)), _window_sum),
    Family(
        "stairs",
        3,
        False,
        _grid((2, 3, 4), (7, 10, 13, 97, 100, 1000, 10007, 1000000007)),
        _stairs,
    ),
    Family(
        "select_or_marker", 2, False, _grid(_CMP4, range(-5, 10), _MARKERS), _select_or_marker, 1
    ),
    Family("first_or_marker", 2, False, _grid(_CMP4, range(-5, 10), _MARKERS), _first_or_marker, 1),
    Family("position_or_marker", 2, False, _grid(range(-9, 10), _MARKERS), _position_or_marker, 1),
    Family("contains_answer", 2, False, _grid(range(-9, 10), _ANSWERS), _contains_answer, 1),
    Family("all_answer", 2, False, _grid(_CMP4, range(-5, 10), _ANSWERS), _all_answer, 1),
    Family("divisible_answer", 2, False, _grid(range(2, 14), _ANSWERS), _divisible_answer, 1),
    Family("argmax_position", 2, True, _grid(_SIDES, (0, 1)), _argmax_position),
    Family("elementwise", 2, True, _grid(_COMBINE), _elementwise),
    Family("max_subarray", 3, True, _grid(_SIDES), _max_subarray),
)
"""Every toy family, easiest first within the trained ones, test-only families last."""
FAMILY_BY_NAME = {family.name: family for family in FAMILIES}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown toy split {split!r}; use one of {', '.join(SPLITS)}")


def families(split: str) -> tuple[Family, ...]:
    """The families that `split` draws from (test-only families are only in `test`)."""
    _check_split(split)
    return tuple(f for f in FAMILIES if split == "test" or not f.test_only)


@functools.cache
def split_params(family: Family, split: str) -> tuple[tuple, ...]:
    """The parameter combinations of `family` that `split` uses: disjoint across splits.

    The family's statements (its visible parameters, `Family.visible`) are shuffled with a
    fixed seed derived from its name (never from the generation seed), then cut: `valid`,
    `test`, then `train` takes the rest; each statement brings all its readings. A
    test-only family gives its whole grid to `test` and nothing to the others.
    """
    _check_split(split)
    if family.test_only:
        return family.grid if split == "test" else ()
    order = list(dict.fromkeys(family.visible(params) for params in family.grid))
    random.Random(f"toy/{family.name}").shuffle(order)
    held = max(1, round(len(order) * HELD_OUT_FRACTION))
    cuts = {"valid": order[:held], "test": order[held : 2 * held], "train": order[2 * held :]}
    readings = {}
    for params in family.grid:
        readings.setdefault(family.visible(params), []).append(params)
    return tuple(params for shown in cuts[split] for params in readings[shown])


@dataclass(frozen=True)
class ToyInstance:
    """A generated problem with its identity: the family and parameters it came from."""

    family: str
    """The family's name."""
    params: tuple
    """The family's parameters, as in `Family.grid`."""
    problem: Problem
    """The problem itself."""


def _outputs(run: Callable[..., object], cases: list[tuple]) -> list[str | None]:
    """What a variant prints on each parsed input, or None where it raises."""
    printed: list[str | None] = []
    for case in cases:
        try:
            printed.append(f"{run(*case)}\n")
        except Exception:  # the program raises here too: a runtime error, a failed test
            printed.append(None)
    return printed


def _fails(variant: _Variant, parsed: list[tuple], expected: list[str]) -> bool:
    """Whether `variant` fails one of the tests (raises, or prints what the judge rejects)."""
    return any(
        got is None or not outputs_match(want, got)
        for want, got in zip(expected, _outputs(variant.run, parsed), strict=True)
    )


def _instance(spec: _Spec, rng: random.Random) -> tuple[list[str], list[str], int, list[str]]:
    """Draw the tests of one instance and keep the buggy programs they catch.

    Returns (test inputs, expected outputs, how many of them are public, buggy programs:
    the other readings' references first, if the statement has an unsaid detail).
    """
    inputs = spec.inputs
    for _ in range(_DRAW_ATTEMPTS):
        revealed = spec.revealing(rng) if spec.revealing else []
        public = revealed + [inputs.typical(rng) for _ in range(rng.randint(1, 2) - len(revealed))]
        cases = {inputs.render(*case): case for case in public}
        n_public = len(cases)
        for case in inputs.edges(rng):
            cases.setdefault(inputs.render(*case), case)
        for _ in range(_DRAW_ATTEMPTS):
            if len(cases) >= n_public + PRIVATE_TESTS:
                break
            case = inputs.random(rng)
            cases.setdefault(inputs.render(*case), case)
        parsed = list(cases.values())
        expected = _outputs(spec.reference.run, parsed)
        if None in expected:
            raise RuntimeError(f"toy: the reference of {spec.task!r} raises on {parsed}")
        settled = all(_fails(r, parsed[:n_public], expected[:n_public]) for r in spec.readings)
        bugs = [spec.program(bug) for bug in spec.bugs if _fails(bug, parsed, expected)]
        if settled and len(cases) == n_public + PRIVATE_TESTS and len(bugs) >= MIN_BUGS:
            readings = [spec.program(reading) for reading in spec.readings]
            return list(cases), expected, n_public, readings + bugs[:MAX_BUGS]
    raise RuntimeError(
        f"toy: could not draw {PRIVATE_TESTS} distinct private tests catching {MIN_BUGS} bugs "
        f"(and public tests that settle the statement's readings) for {spec.task!r}; widen "
        f"the family's inputs or add buggy variants"
    )


def toy_instances(split: str, count: int, seed: int = 0) -> list[ToyInstance]:
    """`count` toy instances of `split`, with their identities; see `generate_toy`."""
    _check_split(split)
    if count < 0:
        raise ValueError(f"toy problem count must be >= 0, got {count}")
    pool = [(f, split_params(f, split)) for f in families(split)]
    instances: list[ToyInstance] = []
    seen: set[tuple] = set()
    for index in range(count):
        rng = random.Random(f"toy/{seed}/{split}/{index}")
        while True:
            family, grid = rng.choice(pool)
            params = rng.choice(grid)
            spec = family.build(*params)
            inputs, outputs, n_public, bugs = _instance(spec, rng)
            identity = (family.name, params, tuple(inputs))
            if identity not in seen:
                seen.add(identity)
                break
        problem = Problem(
            name=f"toy/{family.name}/{index}",
            source="toy",
            statement=spec.statement,
            public_tests=TestSet(STDIO, tuple(inputs[:n_public]), tuple(outputs[:n_public])),
            private_tests=TestSet(STDIO, tuple(inputs[n_public:]), tuple(outputs[n_public:])),
            time_limit_s=TIME_LIMIT_S,
            memory_mb=MEMORY_MB,
            solutions=(spec.program(spec.reference),),
            incorrect_solutions=tuple(bugs),
        )
        instances.append(ToyInstance(family.name, params, problem))
    return instances


def statement_readings(instance: ToyInstance) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(reference, buggy programs) under each reading of `instance`'s statement, its own
    included: one, its own, for a family whose statement says everything (the buggy
    programs those the tests catch); one per value of the unsaid detail otherwise (the
    buggy programs all the family's, caught or not). What a program written without the
    feedback chooses from."""
    family = FAMILY_BY_NAME[instance.family]
    problem = instance.problem
    if not family.hidden:
        return ((problem.solutions[0], problem.incorrect_solutions),)
    shown = family.visible(instance.params)
    specs = [family.build(*params) for params in family.grid if family.visible(params) == shown]
    return tuple(
        (spec.program(spec.reference), tuple(spec.program(bug) for bug in spec.bugs))
        for spec in specs
    )


def family_of(name: str) -> str:
    """The family of a toy problem, from its name (`toy/<family>/<index>`)."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "toy":
        raise ValueError(f"{name!r} is not a toy problem's name (toy/<family>/<index>)")
    return parts[1]


def generate_toy(split: str, count: int, seed: int = 0) -> list[Problem]:
    """`count` toy problems of `split` ("train", "valid" or "test"), drawn with `seed`.

    Deterministic: the same arguments give identical problems, and problem i does not
    depend on `count` (a longer list extends a shorter one). Names are
    `toy/<family>/<i>`, unique within the split. Each problem has 1-2 public tests,
    `PRIVATE_TESTS` private ones, one reference solution and 2-4 buggy ones that each fail
    at least one test (and, where the statement leaves a detail unsaid, the other
    readings' references, each failing a public test). Families are drawn uniformly
    among `families(split)`.
    """
    return [instance.problem for instance in toy_instances(split, count, seed)]
