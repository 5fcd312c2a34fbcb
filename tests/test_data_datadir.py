"""Kaldi data directories: writing, reading, validation like validate_data_dir.sh, atomic output."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espnet_prune.data.atomic import atomic_directory
from espnet_prune.data.datadir import (
    DataDirError,
    Utterance,
    format_table_line,
    parse_table_line,
    read_table,
    validate_data_dir,
    write_data_dir,
    write_table,
)
from espnet_prune.data.errors import BadInputLog, DataPrepError

# Example timing varies on a loaded machine; the properties checked do not.
NO_DEADLINE = settings(deadline=None)

UTTERANCES = [
    Utterance("spk2-0001", "spk2", "/a/2-1.flac", "HELLO THERE", {"intent": "greet"}),
    Utterance("spk1-0002", "spk1", "/a/1-2.flac", "GOOD NIGHT", {"intent": "bye"}),
    Utterance("spk1-0001", "spk1", "/a/1-1.flac", "GOOD MORNING", {"intent": "greet"}),
]


def test_write_data_dir_sorts_and_writes_every_table(tmp_path: Path) -> None:
    out = tmp_path / "train"
    write_data_dir(out, UTTERANCES, {"spk1": "f", "spk2": "m"})
    assert sorted(p.name for p in out.iterdir()) == [
        "intent",
        "spk2gender",
        "spk2utt",
        "text",
        "utt2spk",
        "wav.scp",
    ]
    assert (out / "utt2spk").read_text() == "spk1-0001 spk1\nspk1-0002 spk1\nspk2-0001 spk2\n"
    assert (out / "spk2utt").read_text() == "spk1 spk1-0001 spk1-0002\nspk2 spk2-0001\n"
    assert read_table(out / "text")["spk1-0002"] == "GOOD NIGHT"
    assert read_table(out / "intent") == {"spk1-0001": "greet", "spk1-0002": "bye", "spk2-0001": "greet"}
    assert validate_data_dir(out, ["intent"]) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["train"]  # no temporary folder left


def test_write_data_dir_rejects_duplicate_ids_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataDirError, match="occurs twice"):
        write_data_dir(tmp_path / "train", [*UTTERANCES, UTTERANCES[0]])
    assert list(tmp_path.iterdir()) == []


def test_write_data_dir_rejects_speakers_that_do_not_sort_like_utterances(tmp_path: Path) -> None:
    # utterance "a-1" of speaker "z" and "b-1" of speaker "y": spk2utt would be unsorted
    utterances = [Utterance("a-1", "z", "/x.flac", "A"), Utterance("b-1", "y", "/y.flac", "B")]
    with pytest.raises(DataDirError, match="prefixes of utterance ids"):
        write_data_dir(tmp_path / "d", utterances)
    interleaved = [Utterance(f"{u}-1", s, "/x.flac", "A") for u, s in (("a", "s1"), ("b", "s2"), ("c", "s1"))]
    with pytest.raises(DataDirError, match="prefixes"):
        write_data_dir(tmp_path / "d", interleaved)


def test_write_data_dir_replaces_an_existing_directory_whole(tmp_path: Path) -> None:
    out = tmp_path / "train"
    write_data_dir(out, UTTERANCES)
    (out / "stale_file").write_text("from an older run\n")
    write_data_dir(out, UTTERANCES[:1])
    assert not (out / "stale_file").exists()
    assert read_table(out / "utt2spk") == {"spk2-0001": "spk2"}
    assert [p.name for p in tmp_path.iterdir()] == ["train"]


@pytest.mark.parametrize(
    ("table", "content", "message"),
    [
        ("utt2spk", "b-1 b\na-1 a\n", "not sorted"),
        ("utt2spk", "a-1 a\na-1 a\n", "occurs twice"),
        ("text", "a-1 HELLO\n", "missing \\['b-1'\\]"),
        ("wav.scp", "a-1 /a.flac\nb-1 /b.flac\nc-1 /c.flac\n", "not in utt2spk"),
        ("spk2utt", "a a-1\nb\n", "expected '<key> <value>'"),
        ("spk2utt", "a a-1 b-1\n", "spk2utt does not match"),
        ("text", "a-1 HELLO\nb-1 \xff\n", None),
        ("spk2gender", "a m\nb x\n", "gender 'x'"),
    ],
)
def test_validate_data_dir_rejects_what_validate_data_dir_sh_rejects(
    tmp_path: Path, table: str, content: str, message: str | None
) -> None:
    write_data_dir(
        tmp_path / "d", [Utterance("a-1", "a", "/a.flac", "A"), Utterance("b-1", "b", "/b.flac", "B")]
    )
    if message is None:  # not UTF-8
        (tmp_path / "d" / table).write_bytes(content.encode("latin-1"))
        message = "not UTF-8"
    else:
        (tmp_path / "d" / table).write_text(content)
    with pytest.raises(DataDirError, match=message) as caught:
        validate_data_dir(tmp_path / "d")
    assert caught.value.path is not None and Path(caught.value.path).parent == tmp_path / "d"


def test_validate_data_dir_names_the_missing_table(tmp_path: Path) -> None:
    write_data_dir(tmp_path / "d", UTTERANCES)
    (tmp_path / "d" / "text").unlink()
    with pytest.raises(DataDirError, match="missing text"):
        validate_data_dir(tmp_path / "d")


def test_read_table_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "utt2spk"
    path.write_text("a-1 a\nc-1 c\nb-1 b\n")
    with pytest.raises(DataPrepError) as caught:
        read_table(path)
    assert (caught.value.path, caught.value.line) == (str(path), 3)
    assert str(caught.value).startswith(f"{path}:3: ")


_KEYS = st.text(min_size=1, max_size=12).filter(lambda k: not any(c.isspace() for c in k))
_VALUES = st.text(min_size=1, max_size=40).filter(
    lambda v: v == v.strip() and v != "" and "\n" not in v and "\r" not in v
)


@NO_DEADLINE
@given(table=st.dictionaries(_KEYS, _VALUES, max_size=8))
def test_tables_round_trip_through_a_file(
    tmp_path_factory: pytest.TempPathFactory, table: dict[str, str]
) -> None:
    path = tmp_path_factory.mktemp("table") / "text"
    write_table(path, sorted(table.items()))
    assert read_table(path) == table
    for key, value in table.items():
        assert parse_table_line(format_table_line(key, value)) == (key, value)


def test_format_table_line_rejects_values_that_would_not_read_back() -> None:
    for key, value in (("a b", "x"), ("a", ""), ("a", "x\ny"), ("a", " x")):
        with pytest.raises(ValueError):
            format_table_line(key, value)


def test_atomic_directory_leaves_nothing_when_interrupted(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("kept")
    with pytest.raises(KeyboardInterrupt), atomic_directory(final) as tmp:
        (tmp / "new").write_text("half")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in final.iterdir()] == ["old"]


def test_bad_input_log_raises_or_counts() -> None:
    error = DataPrepError("broken", "/x/y.txt", 7)
    assert str(error) == "/x/y.txt:7: broken"
    with pytest.raises(DataPrepError):
        BadInputLog(skip_bad=False).report(error)
    log = BadInputLog(skip_bad=True)
    log.report(error)
    log.report(DataPrepError("also broken", "/x/z.flac"))
    assert log.count == 2
    assert [e.location for e in log.skipped] == ["/x/y.txt:7", "/x/z.flac"]
