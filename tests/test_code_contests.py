"""CodeContests rows become Problems, streamed from parquet shards in the real schema."""

from __future__ import annotations

import types

import datasets
import pyarrow
import pytest
from fixtures import ADD_PROGRAM, code_contests_row, pairs, write_code_contests_shards

from problems.code_contests import (
    HUB_SCHEMA,
    NO_PRIVATE_TESTS,
    NO_PUBLIC_TESTS,
    CodeContestsError,
    LoadStats,
    load_code_contests,
)
from sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIME_LIMIT_S

MALFORMED = "malformed: public_tests has 2 inputs but 1 outputs"


@pytest.fixture
def shards(tmp_path):
    """Two train shards (6 rows: 3 kept, 3 dropped) and one valid shard, under data/."""
    train_0 = [
        code_contests_row("1548_A. Web of Lies"),
        code_contests_row("no_public", public_tests=pairs()),
        code_contests_row(
            "no_limits",
            time_limit=None,
            memory_limit_bytes=0,
            private_tests=pairs(),
            generated_tests=pairs(("2 2\n", "4\n")),
        ),
    ]
    train_1 = [
        code_contests_row("no_private", private_tests=pairs(), generated_tests=pairs()),
        code_contests_row("broken", public_tests={"input": ["1 2\n", "3 4\n"], "output": ["3\n"]}),
        code_contests_row(
            "fractional",
            time_limit={"seconds": 1, "nanos": 500_000_000},
            memory_limit_bytes=64 * 2**20 + 123,
        ),
    ]
    valid = [code_contests_row("valid_one"), code_contests_row("valid_two")]
    return write_code_contests_shards(
        tmp_path,
        {
            "data/train-00000-of-00002.parquet": train_0,
            "data/train-00001-of-00002.parquet": train_1,
            "data/valid-00000-of-00001.parquet": valid,
        },
    )


def _problems(split, path, limit=None):
    stream = load_code_contests(split, str(path), limit)
    return stream, {problem.name: problem for problem in stream}


def test_a_row_maps_to_a_problem_field_by_field(shards):
    _, problems = _problems("train", shards)
    problem = problems["1548_A. Web of Lies"]
    assert problem.source == "code_contests"
    assert problem.statement == "1548_A. Web of Lies: print the sum of two integers."
    assert problem.public_tests.kind == "stdio"
    assert problem.public_tests.inputs == ("1 2\n",)
    assert problem.public_tests.outputs == ("3\n",)
    # private + generated, in that order
    assert problem.private_tests.inputs == ("5 5\n", "-1 1\n", "7 8\n")
    assert problem.private_tests.outputs == ("10\n", "0\n", "15\n")
    assert problem.time_limit_s == 2.0
    assert problem.memory_mb == 256
    assert problem.reply_prefix == "" and problem.prompt_tests == ""


def test_only_python3_solutions_are_kept(shards):
    _, problems = _problems("train", shards)
    problem = problems["1548_A. Web of Lies"]
    # languages [2, 3, 1, 3]: C++, Python 3, Python 2, Python 3
    assert problem.solutions == (ADD_PROGRAM, "print(sum(map(int, input().split())))\n")
    # languages [3, 4]: Python 3, Java
    assert problem.incorrect_solutions == ("print(0)\n",)


def test_limits_default_when_unset_and_convert_nanos_and_bytes(shards):
    _, problems = _problems("train", shards)
    assert problems["no_limits"].time_limit_s == DEFAULT_TIME_LIMIT_S == 10.0
    assert problems["no_limits"].memory_mb == DEFAULT_MEMORY_MB == 1024
    assert problems["fractional"].time_limit_s == 1.5
    assert problems["fractional"].memory_mb == 64  # 64 MiB + 123 bytes, floored


def test_generated_tests_alone_are_enough_private_tests(shards):
    _, problems = _problems("train", shards)
    assert problems["no_limits"].private_tests.inputs == ("2 2\n",)


def test_drops_are_counted_with_their_reasons(shards):
    stream, problems = _problems("train", shards)
    assert sorted(problems) == ["1548_A. Web of Lies", "fractional", "no_limits"]
    assert stream.stats == LoadStats(
        read=6,
        kept=3,
        dropped={NO_PUBLIC_TESTS: 1, NO_PRIVATE_TESTS: 1, MALFORMED: 1},
    )
    assert stream.stats.dropped_total == 3
    assert stream.stats.summary() == (
        "read 6, kept 3, dropped 3 (malformed: public_tests has 2 inputs but 1 outputs: 1, "
        "no private or generated tests: 1, no public tests: 1)"
    )


def test_a_malformed_row_is_skipped_not_fatal(tmp_path):
    rows = [
        {**code_contests_row("no_name"), "name": None},
        code_contests_row("null_tests", private_tests=None),
        code_contests_row("fine"),
    ]
    write_code_contests_shards(tmp_path, {"test-00000-of-00001.parquet": rows})
    stream, problems = _problems("test", tmp_path)
    assert list(problems) == ["fine"]
    assert stream.stats.dropped == {
        "malformed: name is a NoneType, not a string": 1,
        "malformed: private_tests is a NoneType, not {input, output}": 1,
    }


def test_each_split_reads_only_its_own_shards(shards):
    stream, problems = _problems("valid", shards)
    assert list(problems) == ["valid_one", "valid_two"]
    assert stream.stats.read == 2


def test_rows_stream_through_an_iterable_dataset(shards):
    stream = load_code_contests("train", str(shards))
    assert isinstance(stream.rows, datasets.IterableDataset)
    assert isinstance(iter(stream), types.GeneratorType)


def test_limit_stops_reading_early(shards):
    stream, problems = _problems("train", shards, limit=1)
    assert list(problems) == ["1548_A. Web of Lies"]
    assert stream.stats.read == 1


def test_a_later_shard_is_not_opened_before_it_is_reached(tmp_path):
    write_code_contests_shards(
        tmp_path, {"train-00000-of-00002.parquet": [code_contests_row("a"), code_contests_row("b")]}
    )
    (tmp_path / "train-00001-of-00002.parquet").write_bytes(b"not a parquet file")
    stream, problems = _problems("train", tmp_path, limit=2)
    assert list(problems) == ["a", "b"]
    with pytest.raises(pyarrow.ArrowInvalid, match="magic bytes"):
        list(load_code_contests("train", str(tmp_path)))


def test_a_second_pass_streams_again_and_recounts(shards):
    stream = load_code_contests("train", str(shards))
    first = [problem.name for problem in stream]
    second = [problem.name for problem in stream]
    assert first == second and len(first) == 3
    assert stream.stats.read == 6


def test_limit_zero_reads_nothing(shards):
    stream, problems = _problems("train", shards, limit=0)
    assert problems == {} and stream.stats.read == 0


def test_a_missing_path_says_what_to_do(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(CodeContestsError, match="does not exist") as error:
        load_code_contests("valid", str(missing))
    assert str(missing) in str(error.value)
    assert "deepmind/code_contests" in str(error.value) and "data=toy" in str(error.value)


def test_a_folder_without_the_splits_shards_says_what_to_do(tmp_path):
    write_code_contests_shards(tmp_path, {"train-00000-of-00001.parquet": [code_contests_row("a")]})
    with pytest.raises(CodeContestsError) as error:
        load_code_contests("valid", str(tmp_path))
    assert str(error.value) == (
        f"data.path {str(tmp_path)!r} has no valid-*.parquet shard; point data.path at a "
        "folder of CodeContests parquet shards (deepmind/code_contests) or use data=toy"
    )


def test_a_file_as_path_is_refused(tmp_path):
    file = tmp_path / "valid-00000-of-00001.parquet"
    write_code_contests_shards(tmp_path, {file.name: [code_contests_row("a")]})
    with pytest.raises(CodeContestsError, match="is not a folder"):
        load_code_contests("valid", str(file))


def test_an_unknown_split_names_the_real_ones(shards):
    with pytest.raises(CodeContestsError, match="no split 'validation'; use one of train, valid"):
        load_code_contests("validation", str(shards))


def test_a_negative_limit_is_refused(shards):
    with pytest.raises(CodeContestsError, match="limit"):
        load_code_contests("train", str(shards), limit=-1)


def test_the_hub_is_streamed_and_its_failure_explained(monkeypatch):
    calls = []

    def offline(*args, **kwargs):
        calls.append((args, kwargs))
        raise ConnectionError("Couldn't reach 'deepmind/code_contests' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(CodeContestsError, match="cannot open deepmind/code_contests") as error:
        load_code_contests("test")
    assert calls == [(("deepmind/code_contests",), {"split": "test", "streaming": True})]
    assert "data.path" in str(error.value)


def test_the_shipped_sample_is_what_its_builder_writes(tmp_path):
    from problems.code_contests_sample import FOLDER, SIZES, sample_table, shard_name, write_sample

    write_sample(tmp_path)
    for split in SIZES:
        shipped = pyarrow.parquet.read_table(FOLDER / shard_name(split))
        assert shipped.schema.equals(HUB_SCHEMA), split
        assert shipped.equals(pyarrow.parquet.read_table(tmp_path / shard_name(split)))
        assert shipped.equals(sample_table(split))


def test_the_sample_reads_with_the_drops_and_long_statements_it_is_built_to_have():
    from transformers import AutoTokenizer

    from actors.dialog import DialogConfig
    from problems.code_contests_sample import FOLDER, SIZES
    from problems.prompts import first_turn_lengths
    from problems.toy import generate_toy

    stream = load_code_contests("train", str(FOLDER))
    problems = list(stream)
    assert stream.stats.read == SIZES["train"]
    assert stream.stats.dropped == {NO_PUBLIC_TESTS: SIZES["train"] // 40}
    toy = {p.name: p for p in generate_toy("train", SIZES["train"], seed=0)}
    for problem in problems:
        same = toy[problem.name]
        assert problem.statement.endswith(same.statement)
        assert problem.public_tests == same.public_tests
        assert problem.private_tests == same.private_tests  # private + generated, in order
        assert problem.solutions == same.solutions  # the C++ one left out
        assert problem.incorrect_solutions == same.incorrect_solutions
        assert problem.memory_mb == same.memory_mb
    limits = {problem.time_limit_s for problem in problems}
    assert limits == {DEFAULT_TIME_LIMIT_S, toy[problems[0].name].time_limit_s}
    # The rehearsal's dialogs: 2048 tokens, replies of up to 256.
    dialog = DialogConfig(max_model_len=2048)
    dialog.sampling.max_new_tokens = 256
    tokenizer = AutoTokenizer.from_pretrained("artifacts/tiny")
    lengths = first_turn_lengths(tokenizer, problems)
    unfit = [length for length in lengths if not dialog.reply_fits(length)]
    # Fit the first turn, not a third (two more replies and a feedback turn between).
    overflow = [n for n in lengths if dialog.reply_fits(n) and n + 3 * 256 > 2048]
    assert len(unfit) == SIZES["train"] // 40
    assert len(overflow) >= SIZES["train"] // 40
