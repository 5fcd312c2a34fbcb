"""LibriSpeech's on-disk layout, and data prep from it into Kaldi/ESPnet data directories.

    <root>/LibriSpeech/{README.TXT,LICENSE.TXT,SPEAKERS.TXT,CHAPTERS.TXT,BOOKS.TXT}
    <root>/LibriSpeech/<subset>/<spk>/<chap>/<spk>-<chap>.trans.txt
    <root>/LibriSpeech/<subset>/<spk>/<chap>/<spk>-<chap>-<utt>.flac

As in ESPnet's egs2/librispeech_100 (and Kaldi's local/data_prep.sh) the speaker id of a data
directory is `<spk>-<chap>`, a prefix of the utterance id, and the directory of `dev-clean` is
`dev_clean`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from espnet_prune.data.audio import AudioPolicy, check_audio
from espnet_prune.data.datadir import PrepSummary, Utterance, write_data_dir
from espnet_prune.data.errors import BadInputLog, DataPrepError

logger = logging.getLogger(__name__)

SUBSETS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)
CORPUS_DIR = "LibriSpeech"
SPEAKERS_FILE = "SPEAKERS.TXT"
SPEAKERS_HEADER = ";ID  |SEX| SUBSET           |MINUTES| NAME"
CHAPTERS_HEADER = ";ID      |READER|MINUTES| SUBSET           | PROJ.|BOOK ID| CH. TITLE | PROJECT TITLE"
_UTTERANCE_ID = re.compile(r"(\d+)-(\d+)-(\d+)", re.ASCII)  # without ASCII, \d takes any script's digits


@dataclass(frozen=True)
class SpeakerInfo:
    """One line of SPEAKERS.TXT."""

    speaker: int
    sex: str  # "M" or "F"
    subset: str
    minutes: float
    name: str


@dataclass(frozen=True)
class TranscriptLine:
    """One line of a `<spk>-<chap>.trans.txt`, with its 1-based line number."""

    utt_id: str
    text: str
    line: int


def data_dir_name(subset: str) -> str:
    """ESPnet's name for a subset's data directory: `train-clean-100` -> `train_clean_100`."""
    return subset.replace("-", "_")


def format_speaker_line(info: SpeakerInfo) -> str:
    """A SPEAKERS.TXT line, padded like the real file's."""
    return f"{info.speaker:<5}| {info.sex} | {info.subset:<17}| {info.minutes:5.2f} | {info.name}"


def parse_speaker_line(line: str) -> SpeakerInfo:
    """Parse a SPEAKERS.TXT line; ValueError if malformed.

    At most four splits: one real reader's name contains '|'.
    """
    fields = [f.strip() for f in line.split("|", 4)]
    if len(fields) != 5:
        raise ValueError("expected 'ID | SEX | SUBSET | MINUTES | NAME'")
    speaker, sex, subset, minutes, name = fields
    if not (speaker.isascii() and speaker.isdigit()):
        raise ValueError(f"speaker id {speaker!r} is not an integer")
    if sex not in ("M", "F"):
        raise ValueError(f"sex {sex!r} is not M or F")
    try:
        minutes_value = float(minutes)
    except ValueError:
        raise ValueError(f"minutes {minutes!r} is not a number") from None
    return SpeakerInfo(int(speaker), sex, subset, minutes_value, name)


def read_speakers(path: Path) -> dict[int, SpeakerInfo]:
    """Read SPEAKERS.TXT (`;` starts a comment line); DataPrepError naming file:line if malformed."""
    speakers: dict[int, SpeakerInfo] = {}
    for number, raw in enumerate(_read_lines(path), start=1):
        # Names are informational only: an odd byte in one must not stop data prep.
        line = raw.decode("utf-8", errors="replace")
        if not line.strip() or line.startswith(";"):
            continue
        try:
            info = parse_speaker_line(line)
        except ValueError as error:
            raise DataPrepError(str(error), path, number) from None
        speakers[info.speaker] = info
    return speakers


def format_transcript_line(utt_id: str, text: str) -> str:
    """A trans.txt line: `<utt-id> <TRANSCRIPT>`."""
    return f"{utt_id} {text}"


def parse_transcript_line(line: str) -> tuple[str, str]:
    """Split a trans.txt line into utterance id and transcript (spaces normalised); ValueError if
    the id is not `<spk>-<chap>-<utt>` or the transcript is empty."""
    utt_id, _, text = line.strip().partition(" ")
    if not _UTTERANCE_ID.fullmatch(utt_id):
        raise ValueError(f"utterance id {utt_id!r} is not <speaker>-<chapter>-<utterance>")
    words = text.split()
    if not words:
        raise ValueError(f"no transcript after {utt_id!r}")
    return utt_id, " ".join(words)


def read_transcripts(
    path: Path, chapter_id: str, bad: BadInputLog
) -> tuple[dict[str, TranscriptLine], set[str]]:
    """Read `<spk>-<chap>.trans.txt`: the good lines by utterance id, and the ids of rejected
    lines (each already reported to `bad`, so their audio need not be reported again)."""
    transcripts: dict[str, TranscriptLine] = {}
    rejected: set[str] = set()
    for number, raw in enumerate(_read_lines(path), start=1):
        try:
            utt_id, text = parse_transcript_line(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            reason = "not UTF-8" if isinstance(error, UnicodeDecodeError) else str(error)
            bad.report(DataPrepError(f"malformed transcript line: {reason}", path, number))
            rejected.update(word.decode("ascii", "replace") for word in raw.split(maxsplit=1)[:1])
            continue
        if not utt_id.startswith(f"{chapter_id}-"):
            bad.report(DataPrepError(f"utterance {utt_id!r} is not of chapter {chapter_id}", path, number))
        elif utt_id in transcripts:
            first = transcripts[utt_id].line
            bad.report(DataPrepError(f"utterance {utt_id!r} repeats line {first}", path, number))
        else:
            transcripts[utt_id] = TranscriptLine(utt_id, text, number)
    return transcripts, rejected


def collect_chapter(chapter_dir: Path, bad: BadInputLog, audio_policy: AudioPolicy = AudioPolicy()) -> list[Utterance]:
    """The utterances of a `<spk>/<chap>` folder: every FLAC paired with its transcript line.

    Their speaker is `<spk>-<chap>`, as in ESPnet's recipe.
    """
    chapter_id = f"{chapter_dir.parent.name}-{chapter_dir.name}"
    trans_path = chapter_dir / f"{chapter_id}.trans.txt"
    audio = {path.name[: -len(".flac")]: path for path in chapter_dir.glob("*.flac")}
    transcripts, rejected = (
        read_transcripts(trans_path, chapter_id, bad) if trans_path.is_file() else ({}, set())
    )
    utterances = []
    for utt_id in sorted(audio.keys() | transcripts.keys()):
        if utt_id in rejected and utt_id not in transcripts:
            continue  # its transcript line was reported as bad
        if utt_id not in transcripts:
            bad.report(DataPrepError(f"audio has no transcript line in {trans_path}", audio[utt_id]))
            continue
        if utt_id not in audio:
            line = transcripts[utt_id]
            bad.report(DataPrepError(f"transcript has no audio {utt_id}.flac", trans_path, line.line))
            continue
        try:
            check_audio(audio[utt_id], policy=audio_policy)
        except DataPrepError as error:
            bad.report(error)
            continue
        utterances.append(
            Utterance(
                utt_id=utt_id,
                speaker=chapter_id,
                audio=str(audio[utt_id].resolve()),
                text=transcripts[utt_id].text,
            )
        )
    return utterances


def collect_subset(
    subset_dir: Path,
    speakers: Mapping[int, SpeakerInfo],
    speakers_path: Path,
    bad: BadInputLog,
    audio_policy: AudioPolicy = AudioPolicy(),
) -> tuple[list[Utterance], dict[str, str]]:
    """All utterances of a subset folder, and spk2gender for its `<spk>-<chap>` speakers."""
    utterances: list[Utterance] = []
    spk2gender: dict[str, str] = {}
    for speaker_dir in _integer_subfolders(subset_dir, "speaker", bad):
        speaker = int(speaker_dir.name)
        if speaker not in speakers:
            bad.report(DataPrepError(f"speaker {speaker} ({speaker_dir}) is not listed", speakers_path))
            continue
        for chapter_dir in _integer_subfolders(speaker_dir, "chapter", bad):
            found = collect_chapter(chapter_dir, bad, audio_policy)
            utterances.extend(found)
            if found:
                spk2gender[found[0].speaker] = speakers[speaker].sex.lower()
    return utterances, spk2gender


def prepare_librispeech(
    root: Path,
    subsets: Sequence[str],
    out_dir: Path,
    skip_bad: bool = False,
    audio_policy: AudioPolicy = AudioPolicy(),
) -> PrepSummary:
    """Write `<out_dir>/<subset with underscores>` for each subset of `<root>/LibriSpeech`.

    Each data directory appears only when complete. Bad input raises DataPrepError, or with
    `skip_bad` is logged, counted and left out.
    """
    corpus = Path(root) / CORPUS_DIR
    if not corpus.is_dir():
        raise DataPrepError(f"no {CORPUS_DIR}/ folder (pass the folder that contains it)", root)
    speakers_path = corpus / SPEAKERS_FILE
    if not speakers_path.is_file():
        raise DataPrepError(f"missing {SPEAKERS_FILE} (speaker genders)", corpus)
    speakers = read_speakers(speakers_path)
    bad = BadInputLog(skip_bad)
    written: dict[str, int] = {}
    for subset in subsets:
        subset_dir = corpus / subset
        if not subset_dir.is_dir():
            raise DataPrepError(f"missing subset {subset}", corpus)
        utterances, spk2gender = collect_subset(subset_dir, speakers, speakers_path, bad, audio_policy)
        if not utterances:
            raise DataPrepError("no usable utterances", subset_dir)
        name = data_dir_name(subset)
        write_data_dir(Path(out_dir) / name, utterances, spk2gender)
        written[name] = len(utterances)
        logger.info("%s: %d utterances, %d speakers", name, len(utterances), len(spk2gender))
    return PrepSummary(written, bad.count)


def _integer_subfolders(folder: Path, kind: str, bad: BadInputLog) -> list[Path]:
    subfolders = []
    for path in sorted(folder.iterdir()):
        if not path.is_dir():
            continue  # stray files (README, .DS_Store) are not utterances
        if path.name.isascii() and path.name.isdigit():
            subfolders.append(path)
        else:
            bad.report(DataPrepError(f"{kind} folder name is not an integer", path))
    return subfolders


def _read_lines(path: Path) -> list[bytes]:
    return Path(path).read_bytes().splitlines()
