"""LibriSpeech data prep on a synthetic corpus in the real layout, and on broken copies of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from espnet_prune.bin import prep_librispeech
from espnet_prune.data.audio import AudioPolicy
from espnet_prune.data.datadir import read_table, validate_data_dir
from espnet_prune.data.errors import DataPrepError
from espnet_prune.data.librispeech import (
    SpeakerInfo,
    format_speaker_line,
    format_transcript_line,
    parse_speaker_line,
    parse_transcript_line,
    prepare_librispeech,
    read_speakers,
)
from espnet_prune.data.synth import SynthRequest, synthesize_corpus

# Example timing varies on a loaded machine; the properties checked do not.
NO_DEADLINE = settings(deadline=None)

SUBSETS = ["train-clean-100", "dev-clean", "test-clean"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic LibriSpeech (40 utterances): <root>/LibriSpeech/..."""
    root = tmp_path_factory.mktemp("librispeech") / "corpus"
    synthesize_corpus(SynthRequest("librispeech", 11, "tiny"), root, workers=2, progress=False)
    return root


@pytest.fixture
def broken(corpus: Path, tmp_path: Path) -> Path:
    """A copy of the corpus a test may break."""
    return Path(shutil.copytree(corpus, tmp_path / "corpus"))


def _chapters(root: Path, subset: str = "dev-clean") -> list[Path]:
    return sorted(p for p in (root / "LibriSpeech" / subset).glob("*/*") if p.is_dir())


def _trans_file(chapter: Path) -> Path:
    return next(chapter.glob("*.trans.txt"))


def test_prep_reads_the_generated_layout_back(corpus: Path, tmp_path: Path) -> None:
    summary = prepare_librispeech(corpus, SUBSETS, tmp_path / "data")
    assert summary.skipped == 0
    assert summary.utterances == {"train_clean_100": 24, "dev_clean": 6, "test_clean": 6}
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "dev_clean",
        "test_clean",
        "train_clean_100",
    ]
    speakers = read_speakers(corpus / "LibriSpeech" / "SPEAKERS.TXT")
    for name, count in summary.utterances.items():
        data = tmp_path / "data" / name
        assert validate_data_dir(data) == count
        utt2spk = read_table(data / "utt2spk")
        for utt, spk in utt2spk.items():
            assert utt.startswith(f"{spk}-") and spk.count("-") == 1  # <spk>-<chap>
        spk2gender = read_table(data / "spk2gender")
        assert spk2gender == {s: speakers[int(s.split("-")[0])].sex.lower() for s in set(utt2spk.values())}
    # text is exactly the trans.txt transcript, wav.scp its FLAC
    chapter = _chapters(corpus)[0]
    text, wav_scp = (
        read_table(tmp_path / "data/dev_clean/text"),
        read_table(tmp_path / "data/dev_clean/wav.scp"),
    )
    for line in _trans_file(chapter).read_text().splitlines():
        utt, transcript = line.split(" ", 1)
        assert text[utt] == transcript
        assert Path(wav_scp[utt]) == (chapter / f"{utt}.flac").resolve()


def test_wav_scp_is_read_by_espnets_sound_reader(corpus: Path, tmp_path: Path) -> None:
    from espnet2.fileio.sound_scp import SoundScpReader

    prepare_librispeech(corpus, ["test-clean"], tmp_path)
    reader = SoundScpReader(str(tmp_path / "test_clean" / "wav.scp"))
    utt = sorted(reader.keys())[0]
    rate, samples = reader[utt]
    assert rate == 16000 and samples.ndim == 1 and len(samples) > 16000 * 0.4  # 0.2 s pads + speech


# Each breaks one thing: returns (path the error must name, its line or None, words it must say).
def _drop_transcript_line(root: Path) -> tuple[Path, int | None, str]:
    trans = _trans_file(_chapters(root)[0])
    lines = trans.read_text().splitlines()
    trans.write_text("\n".join(lines[1:]) + "\n")
    return trans.parent / f"{lines[0].split()[0]}.flac", None, "no transcript line"


def _drop_audio(root: Path) -> tuple[Path, int | None, str]:
    trans = _trans_file(_chapters(root)[0])
    utt = trans.read_text().splitlines()[1].split()[0]
    (trans.parent / f"{utt}.flac").unlink()
    return trans, 2, "has no audio"


def _first_flac(root: Path) -> Path:
    return sorted(_chapters(root)[0].glob("*.flac"))[0]


def _garble_audio(root: Path) -> tuple[Path, int | None, str]:
    flac = _first_flac(root)
    flac.write_bytes(b"this is not a FLAC file" * 10)
    return flac, None, "unreadable audio"


def _empty_audio(root: Path) -> tuple[Path, int | None, str]:
    flac = _first_flac(root)
    flac.write_bytes(b"")
    return flac, None, "unreadable audio"


def _resample_audio_to_8k(root: Path) -> tuple[Path, int | None, str]:
    flac = _first_flac(root)
    samples, _ = soundfile.read(flac, dtype="int16")
    soundfile.write(flac, samples[::2], 8000, format="FLAC", subtype="PCM_16")
    return flac, None, "sample rate is 8000 Hz"


def _stereo_audio(root: Path) -> tuple[Path, int | None, str]:
    flac = _first_flac(root)
    samples, rate = soundfile.read(flac, dtype="int16")
    soundfile.write(flac, np.stack([samples, samples], axis=1), rate, format="FLAC", subtype="PCM_16")
    return flac, None, "2 channels"


def _malformed_transcript_line(root: Path) -> tuple[Path, int | None, str]:
    trans = _trans_file(_chapters(root)[0])
    lines = trans.read_text().splitlines()
    lines[1] = lines[1].split()[0]  # id without transcript
    trans.write_text("\n".join(lines) + "\n")
    return trans, 2, "no transcript after"


def _non_utf8_transcript_line(root: Path) -> tuple[Path, int | None, str]:
    trans = _trans_file(_chapters(root)[0])
    lines = trans.read_bytes().splitlines()
    lines[2] = lines[2] + b" CAF\xe9"
    trans.write_bytes(b"\n".join(lines) + b"\n")
    return trans, 3, "not UTF-8"


def _foreign_utterance_id(root: Path) -> tuple[Path, int | None, str]:
    trans = _trans_file(_chapters(root)[0])
    trans.write_text(trans.read_text() + "1-2-0000 A LINE OF ANOTHER CHAPTER\n")
    return trans, len(trans.read_text().splitlines()), "is not of chapter"


BREAKAGES: list[Callable[[Path], tuple[Path, int | None, str]]] = [
    _drop_transcript_line,
    _drop_audio,
    _garble_audio,
    _empty_audio,
    _resample_audio_to_8k,
    _stereo_audio,
    _malformed_transcript_line,
    _non_utf8_transcript_line,
    _foreign_utterance_id,
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__.strip("_"))
def test_bad_input_is_a_clear_error_or_skipped_and_counted(
    broken: Path, tmp_path: Path, breakage: Callable[[Path], tuple[Path, int | None, str]]
) -> None:
    path, line, words = breakage(broken)
    with pytest.raises(DataPrepError, match=words) as caught:
        prepare_librispeech(broken, SUBSETS, tmp_path / "data")
    assert (caught.value.path, caught.value.line) == (str(path), line)
    assert caught.value.location in str(caught.value)
    # the subset before dev-clean is complete; dev-clean and test-clean never appeared
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["train_clean_100"]

    summary = prepare_librispeech(broken, SUBSETS, tmp_path / "skipped", skip_bad=True)
    assert summary.skipped == 1
    expected_dev = 5 if breakage is not _foreign_utterance_id else 6
    assert summary.utterances == {"train_clean_100": 24, "dev_clean": expected_dev, "test_clean": 6}
    validate_data_dir(tmp_path / "skipped" / "dev_clean")


def test_skip_bad_counts_every_bad_input(broken: Path, tmp_path: Path) -> None:
    for breakage in (_stereo_audio, _drop_audio, _non_utf8_transcript_line):  # lines 1, 2, 3 of a chapter
        breakage(broken)
    _garble_audio_in(broken, "test-clean")
    summary = prepare_librispeech(broken, SUBSETS, tmp_path, skip_bad=True)
    assert summary.skipped == 4
    assert summary.utterances == {"train_clean_100": 24, "dev_clean": 3, "test_clean": 5}


def _garble_audio_in(root: Path, subset: str) -> None:
    sorted(_chapters(root, subset)[0].glob("*.flac"))[0].write_bytes(b"\0" * 100)


def test_truncated_audio_is_caught_when_decoding(broken: Path, tmp_path: Path) -> None:
    flac = _first_flac(broken)
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    prepare_librispeech(broken, ["dev-clean"], tmp_path / "headers_only")  # the header is intact
    with pytest.raises(DataPrepError) as caught:
        prepare_librispeech(broken, ["dev-clean"], tmp_path / "decoded", audio_policy=AudioPolicy(decode=True))
    assert caught.value.path == str(flac)


def test_speaker_missing_from_speakers_txt(broken: Path, tmp_path: Path) -> None:
    speakers_txt = broken / "LibriSpeech" / "SPEAKERS.TXT"
    speaker = _chapters(broken)[0].parent.name
    lines = [line for line in speakers_txt.read_text().splitlines() if not line.startswith(f"{speaker} ")]
    speakers_txt.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataPrepError, match=f"speaker {speaker} .* is not listed") as caught:
        prepare_librispeech(broken, ["dev-clean"], tmp_path)
    assert caught.value.path == str(speakers_txt)


def test_missing_corpus_and_subset_are_clear_errors(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(DataPrepError, match="no LibriSpeech/ folder"):
        prepare_librispeech(tmp_path, SUBSETS, tmp_path / "data")
    with pytest.raises(DataPrepError, match="missing subset dev-other"):
        prepare_librispeech(corpus, ["dev-other"], tmp_path / "data")


def test_cli_writes_data_dirs_and_fails_cleanly_on_bad_input(broken: Path, tmp_path: Path) -> None:
    assert (
        prep_librispeech.main(["--root", str(broken), "--subsets", "dev-clean", "--out", str(tmp_path / "a")])
        == 0
    )
    assert validate_data_dir(tmp_path / "a" / "dev_clean") == 6
    _drop_audio(broken)
    assert (
        prep_librispeech.main(["--root", str(broken), "--subsets", "dev-clean", "--out", str(tmp_path / "b")])
        == 1
    )
    assert not (tmp_path / "b" / "dev_clean").exists()
    argv = ["--root", str(broken), "--subsets", "dev-clean", "--out", str(tmp_path / "c"), "--skip-bad"]
    assert prep_librispeech.main(argv) == 0
    assert validate_data_dir(tmp_path / "c" / "dev_clean") == 5


def test_cli_runs_as_a_module(corpus: Path, tmp_path: Path) -> None:
    options = ["--root", str(corpus), "--subsets", "test-clean", "--out", str(tmp_path)]
    command = [sys.executable, "-m", "espnet_prune.bin.prep_librispeech", *options]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert validate_data_dir(tmp_path / "test_clean") == 6


_WORDS = st.lists(st.from_regex(r"[A-Z']{1,10}", fullmatch=True), min_size=1, max_size=12)


@NO_DEADLINE
@given(speaker=st.integers(0, 10**6), chapter=st.integers(0, 10**6), utt=st.integers(0, 9999), words=_WORDS)
def test_transcript_lines_round_trip(speaker: int, chapter: int, utt: int, words: list[str]) -> None:
    utt_id, text = f"{speaker}-{chapter}-{utt:04d}", " ".join(words)
    assert parse_transcript_line(format_transcript_line(utt_id, text)) == (utt_id, text)
    assert parse_transcript_line(f"{utt_id}  {'   '.join(words)}\r") == (utt_id, text)


@NO_DEADLINE
@given(line=st.text(max_size=40))
def test_transcript_parser_accepts_or_raises_value_error(line: str) -> None:
    try:
        utt_id, text = parse_transcript_line(line)
    except ValueError:
        return
    assert utt_id.count("-") == 2 and text == " ".join(text.split()) and text


@NO_DEADLINE
@given(
    speaker=st.integers(0, 99999),
    sex=st.sampled_from("MF"),
    minutes=st.integers(0, 99999).map(lambda m: m / 100),
    name=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool),
)
def test_speaker_lines_round_trip_even_with_a_pipe_in_the_name(
    speaker: int, sex: str, minutes: float, name: str
) -> None:
    info = SpeakerInfo(speaker, sex, "dev-clean", minutes, name)
    assert parse_speaker_line(format_speaker_line(info)) == info


def test_real_speakers_txt_line_with_a_pipe_in_the_name() -> None:
    line = "60   | M | train-clean-100  | 20.18 | |CBW|Simon"
    assert parse_speaker_line(line) == SpeakerInfo(60, "M", "train-clean-100", 20.18, "|CBW|Simon")
    with pytest.raises(ValueError, match="sex"):
        parse_speaker_line("60   | X | train-clean-100  | 20.18 | Simon")
