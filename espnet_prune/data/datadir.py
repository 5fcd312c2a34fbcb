"""Kaldi/ESPnet data directories: writing them atomically and validating them.

A data directory holds two-column tables `<key> <value>`, one entry per line, keys sorted in C
(byte) order and unique: `wav.scp`, `text`, `utt2spk` (keyed by utterance), `spk2utt` (keyed by
speaker) and optional ones such as `spk2gender` or per-utterance targets. The checks follow
ESPnet's `utils/validate_data_dir.sh --no-feats`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from espnet_prune.data.atomic import atomic_directory
from espnet_prune.data.errors import DataPrepError

UTTERANCE_TABLES = ("wav.scp", "text", "utt2spk")
GENDERS = ("f", "m")


class DataDirError(DataPrepError):
    """A data directory that ESPnet's validate_data_dir.sh would reject."""


@dataclass(frozen=True)
class Utterance:
    """One entry of a data directory.

    `audio` is the wav.scp value (a path or a `cmd |` pipe); `extra` holds further per-utterance
    tables by file name (e.g. {"intent": "alarm_set"}).
    """

    utt_id: str
    speaker: str
    audio: str
    text: str
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PrepSummary:
    """What a data prep wrote: utterances per data directory, and the bad inputs it skipped."""

    utterances: Mapping[str, int]
    skipped: int


def format_table_line(key: str, value: str) -> str:
    """One table line; raises ValueError for a key or value that would not read back."""
    if not key or any(c.isspace() for c in key):
        raise ValueError(f"table key {key!r} is empty or contains whitespace")
    if value != value.strip() or not value or "\n" in value or "\r" in value:
        raise ValueError(f"table value {value!r} for {key!r} is empty, padded or spans lines")
    return f"{key} {value}\n"


def parse_table_line(line: str) -> tuple[str, str]:
    """Split a table line into key and value (the rest of the line); ValueError if malformed."""
    parts = line.strip().split(maxsplit=1)
    if len(parts) != 2:
        raise ValueError("expected '<key> <value>'")
    return parts[0], parts[1]


def write_table(path: Path, rows: Iterable[tuple[str, str]]) -> None:
    """Write key/value rows in the given order (UTF-8)."""
    with open(path, "w", encoding="utf-8") as out:
        for key, value in rows:
            out.write(format_table_line(key, value))


def read_table(path: Path, strict: bool = True, error: type[ValueError] = DataDirError) -> dict[str, str]:
    """Read a Kaldi table (``<key> <value>`` lines), the one reader of the project.

    ``strict`` (data directories, as validate_data_dir.sh wants them): every line has a value and the
    keys are sorted (C order). Otherwise (what programs wrote: hypotheses, decoded intents) blank
    lines are skipped, a key alone has an empty value and any order goes. Either way a key given
    twice, an unreadable file or bytes that are not UTF-8 raise ``error(reason, path, line)``.
    """
    table: dict[str, str] = {}
    previous = None
    try:
        lines = Path(path).read_bytes().split(b"\n")
    except OSError as problem:
        raise error(f"cannot read ({problem.strerror})", path) from None
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as problem:
            raise error(f"not UTF-8 (byte {raw[problem.start]:#04x} at column {problem.start + 1})", path, number) from None
        if strict:
            try:
                key, value = parse_table_line(line)
            except ValueError as problem:
                raise error(str(problem), path, number) from None
        else:
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            key, value = fields[0], fields[1].strip() if len(fields) == 2 else ""
        if key in table:
            raise error(f"key {key!r} occurs twice", path, number)
        if strict and previous is not None and key < previous:
            raise error(f"key {key!r} is not sorted (C order) after {previous!r}", path, number)
        table[key] = value
        previous = key
    return table


def spk2utt_from_utt2spk(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """Speakers in order of first appearance, as Kaldi's utt2spk_to_spk2utt.pl lists them."""
    spk2utt: dict[str, list[str]] = {}
    for utt, spk in utt2spk.items():
        spk2utt.setdefault(spk, []).append(utt)
    return spk2utt


def _speakers_sort_like_utterances(spk2utt: Mapping[str, Sequence[str]], utt2spk: Mapping[str, str]) -> bool:
    # validate_data_dir.sh's test: spk2utt (sorted by speaker) expanded back into utt2spk lines
    # must give utt2spk (sorted by utterance) line for line.
    expanded = [(utt, spk) for spk, utts in spk2utt.items() for utt in utts]
    return list(spk2utt) == sorted(spk2utt) and expanded == list(utt2spk.items())


def write_data_dir(
    out: Path,
    utterances: Sequence[Utterance],
    spk2gender: Mapping[str, str] | None = None,
) -> None:
    """Write and validate a data directory; it appears at `out` only when complete and valid."""
    for utterance in utterances:
        _check_utterance(utterance, out)
    ordered = sorted(utterances, key=lambda u: u.utt_id)
    for before, after in pairwise(ordered):
        if before.utt_id == after.utt_id:
            raise DataDirError(f"utterance id {after.utt_id!r} occurs twice", out)
    extra_tables = sorted({name for u in ordered for name in u.extra})
    for utterance in ordered:
        missing = set(extra_tables) - set(utterance.extra)
        if missing:
            raise DataDirError(f"utterance {utterance.utt_id!r} lacks {sorted(missing)}", out)
    utt2spk = {u.utt_id: u.speaker for u in ordered}
    spk2utt = spk2utt_from_utt2spk(utt2spk)
    if not _speakers_sort_like_utterances(spk2utt, utt2spk):
        raise DataDirError(
            "speakers do not sort like their utterances: make speaker ids prefixes of "
            "utterance ids (Kaldi needs utt2spk and spk2utt both sorted)",
            out,
        )
    with atomic_directory(out) as tmp:
        write_table(tmp / "wav.scp", ((u.utt_id, u.audio) for u in ordered))
        write_table(tmp / "text", ((u.utt_id, u.text) for u in ordered))
        write_table(tmp / "utt2spk", utt2spk.items())
        write_table(tmp / "spk2utt", ((spk, " ".join(utts)) for spk, utts in spk2utt.items()))
        for name in extra_tables:
            write_table(tmp / name, ((u.utt_id, u.extra[name]) for u in ordered))
        if spk2gender is not None:
            write_table(tmp / "spk2gender", ((spk, spk2gender[spk]) for spk in sorted(spk2utt)))
        validate_data_dir(tmp, extra_tables)


def _check_utterance(utterance: Utterance, out: Path) -> None:
    """DataDirError naming `out` and the utterance if a table line of it would not read back.

    Ids are also kept free of '/' and '\\': ESPnet's stages name files after utterance and speaker
    ids, and such an id would write outside their folders.
    """
    for what, value in (("utterance id", utterance.utt_id), ("speaker id", utterance.speaker)):
        if value in ("", ".", "..") or any(c.isspace() or c in "/\\" for c in value):
            raise DataDirError(f"{what} {value!r} is empty, '.', '..' or holds whitespace, '/' or '\\'", out)
    values = {"wav.scp": utterance.audio, "text": utterance.text, **utterance.extra}
    for table, value in values.items():
        try:
            format_table_line(utterance.utt_id, value).encode("utf-8")
        except (ValueError, UnicodeEncodeError) as error:  # UnicodeEncodeError: lone surrogates
            raise DataDirError(f"{table} of utterance {utterance.utt_id!r}: {error}", out) from None


def validate_data_dir(data_dir: Path, extra_tables: Sequence[str] = ()) -> int:
    """Check a data directory like validate_data_dir.sh --no-feats; return its utterance count.

    Every table sorted and unique; every utterance in utt2spk has audio, text and each of the
    `extra_tables`, and nothing else does; spk2utt is exactly what utt2spk implies and sorted,
    which holds only if sorting by utterance keeps each speaker's utterances together in speaker
    order (hence speaker ids as utterance-id prefixes); spk2gender, if present, covers the speakers.
    """
    data_dir = Path(data_dir)
    for name in (*UTTERANCE_TABLES, "spk2utt"):
        if not (data_dir / name).is_file():
            raise DataDirError(f"missing {name}", data_dir)
    utt2spk = read_table(data_dir / "utt2spk")
    if not utt2spk:
        raise DataDirError("no utterances", data_dir / "utt2spk")
    for utt, spk in utt2spk.items():
        if len(spk.split()) != 1:
            raise DataDirError(f"speaker of {utt!r} is not one word: {spk!r}", data_dir / "utt2spk")
    for name in (*UTTERANCE_TABLES, *extra_tables):
        _check_same_keys(data_dir / name, read_table(data_dir / name), utt2spk)
    spk2utt = {spk: utts.split() for spk, utts in read_table(data_dir / "spk2utt").items()}
    if not _speakers_sort_like_utterances(spk2utt, utt2spk):
        raise DataDirError(
            "spk2utt does not match utt2spk (each speaker's utterances must be listed, and "
            "sorting by utterance must keep them together, in speaker order)",
            data_dir / "spk2utt",
        )
    if (data_dir / "spk2gender").is_file():
        _check_spk2gender(data_dir / "spk2gender", spk2utt)
    return len(utt2spk)


def _check_same_keys(path: Path, table: Mapping[str, str], utt2spk: Mapping[str, str]) -> None:
    if table.keys() == utt2spk.keys():
        return
    missing = sorted(utt2spk.keys() - table.keys())
    surplus = sorted(table.keys() - utt2spk.keys())
    detail = f"missing {missing[:3]}" if missing else f"not in utt2spk: {surplus[:3]}"
    raise DataDirError(f"utterances differ from utt2spk ({detail})", path)


def _check_spk2gender(path: Path, spk2utt: Mapping[str, Sequence[str]]) -> None:
    spk2gender = read_table(path)
    if spk2gender.keys() != spk2utt.keys():
        raise DataDirError("speakers differ from spk2utt", path)
    for speaker, gender in spk2gender.items():
        if gender not in GENDERS:
            raise DataDirError(f"gender {gender!r} of {speaker!r} is not one of {GENDERS}", path)
