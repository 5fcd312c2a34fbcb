"""Hostile input to data prep: damaged audio, odd ids, bad encodings, paths that try to escape.

Complements tests/test_data_{librispeech,slurp,datadir}.py, which already cover missing, garbled,
empty (0-byte), 8 kHz and stereo FLAC, non-UTF-8 trans.txt lines, truncated FLAC with
--decode_audio (LibriSpeech), recording names with '/', and malformed jsonl records. Every case
here must be an error naming the file (and line), or with skip_bad be left out and counted.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_prune.bin import prep_librispeech, prep_slurp
from espnet_prune.data.audio import AudioPolicy, check_audio
from espnet_prune.data.datadir import validate_data_dir
from espnet_prune.data.errors import DataPrepError
from espnet_prune.data.librispeech import prepare_librispeech
from espnet_prune.data.slurp import prepare_slurp
from espnet_prune.data.synth import SynthRequest, synthesize_corpus

TONE = (3000 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000)).astype(np.int16)  # 0.5 s


def _write(path: Path, samples: np.ndarray = TONE, rate: int = 16000, fmt: str = "FLAC") -> Path:
    soundfile.write(path, samples, rate, format=fmt, subtype="PCM_16")
    return path


# ---------------------------------------------------------------------------------------------
# check_audio on WAV and on damaged FLAC (data prep reads FLAC; wav.scp of other corpora is WAV)


def test_truncated_wav_is_caught_from_its_header(tmp_path: Path) -> None:
    # libsndfile reads a cut WAV as a shorter one without complaint, even when decoding it
    data = _write(tmp_path / "a.wav", fmt="WAV").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) - 1000])
    for decode in (False, True):
        with pytest.raises(DataPrepError, match=r"audio is truncated: 15000 of 16000 bytes of samples") as caught:
            check_audio(cut, policy=AudioPolicy(decode=decode))
        assert caught.value.path == str(cut)
    assert check_audio(tmp_path / "a.wav") == 8000


def test_streamed_wav_with_unknown_length_is_accepted(tmp_path: Path) -> None:
    data = bytearray(_write(tmp_path / "a.wav", fmt="WAV").read_bytes())
    position = data.index(b"data") + 4
    data[position : position + 4] = (0xFFFFFFFF).to_bytes(4, "little")  # as sox writes to a pipe
    (tmp_path / "streamed.wav").write_bytes(bytes(data))
    assert check_audio(tmp_path / "streamed.wav", policy=AudioPolicy(decode=True)) > 0


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: _write(p, TONE[:0], fmt="WAV"), r"audio is empty \(0 samples\)"),
        (lambda p: _write(p, fmt="WAV").write_bytes(b"RIFF\x10\0\0\0WAVEjunkjunkjunk"), "unreadable audio"),
        (lambda p: _write(p, TONE[::2], rate=8000, fmt="WAV"), "sample rate is 8000 Hz, expected 16000 Hz"),
        (lambda p: _write(p, np.stack([TONE, TONE], 1), fmt="WAV"), "2 channels, expected mono"),
    ],
    ids=["zero-samples", "corrupt-header", "8kHz", "stereo"],
)
def test_bad_wav_names_the_file(tmp_path: Path, make, words: str) -> None:
    path = tmp_path / "x.wav"
    make(path)
    with pytest.raises(DataPrepError, match=words) as caught:
        check_audio(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_damaged_flac_frames_fail_to_decode(tmp_path: Path) -> None:
    flac = _write(tmp_path / "a.flac")
    data = bytearray(flac.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    flac.write_bytes(bytes(data))
    check_audio(flac)  # the header is intact: only decoding can tell
    with pytest.raises(DataPrepError, match="audio does not decode") as caught:
        check_audio(flac, policy=AudioPolicy(decode=True))
    assert caught.value.path == str(flac)


# ---------------------------------------------------------------------------------------------
# LibriSpeech


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile_ls") / "corpus"
    synthesize_corpus(SynthRequest("librispeech", 11, "tiny"), root, workers=1, progress=False)
    return root


@pytest.fixture
def broken(corpus: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(corpus, tmp_path / "corpus"))


def _chapter(root: Path) -> Path:
    return sorted(p for p in (root / "LibriSpeech" / "dev-clean").glob("*/*") if p.is_dir())[0]


@pytest.mark.parametrize(
    "bad_id", ["{spk} {chap}-0000", "{spk}-{chap}/../0000", "../{spk}-{chap}-0000", "{spk}-{chap}-..", "{spk}-{chap}-0\u0661"]
)
def test_transcript_ids_with_spaces_slashes_or_dots_are_rejected_at_their_line(
    broken: Path, tmp_path: Path, bad_id: str
) -> None:
    chapter = _chapter(broken)
    trans = next(chapter.glob("*.trans.txt"))
    spk, chap = chapter.parent.name, chapter.name
    with open(trans, "a", encoding="utf-8") as f:
        f.write(bad_id.format(spk=spk, chap=chap) + " SOME WORDS\n")
    line = len(trans.read_text().splitlines())
    with pytest.raises(DataPrepError, match="malformed transcript line") as caught:
        prepare_librispeech(broken, ["dev-clean"], tmp_path / "data")
    assert (caught.value.path, caught.value.line) == (str(trans), line)
    summary = prepare_librispeech(broken, ["dev-clean"], tmp_path / "data", skip_bad=True)
    assert (summary.skipped, summary.utterances) == (1, {"dev_clean": 6})


def test_transcript_that_is_not_utf8_at_all(broken: Path, tmp_path: Path) -> None:
    trans = next(_chapter(broken).glob("*.trans.txt"))
    trans.write_bytes(trans.read_text().encode("utf-16"))  # a BOM and NULs: no line is usable
    with pytest.raises(DataPrepError, match="not UTF-8") as caught:
        prepare_librispeech(broken, ["dev-clean"], tmp_path / "data")
    assert (caught.value.path, caught.value.line) == (str(trans), 1)
    summary = prepare_librispeech(broken, ["dev-clean"], tmp_path / "data", skip_bad=True)
    assert summary.utterances == {"dev_clean": 3} and summary.skipped >= 3


@pytest.mark.parametrize("name", ["12 34", "..x", "0x1f"])
def test_folder_names_that_are_not_integers(broken: Path, tmp_path: Path, name: str) -> None:
    chapter = _chapter(broken)
    odd = chapter.parent / name
    shutil.copytree(chapter, odd)
    with pytest.raises(DataPrepError, match="chapter folder name is not an integer") as caught:
        prepare_librispeech(broken, ["dev-clean"], tmp_path / "data")
    assert caught.value.path == str(odd)
    assert prepare_librispeech(broken, ["dev-clean"], tmp_path / "data", skip_bad=True).skipped == 1


def test_zero_length_and_8khz_audio_skipped_together(broken: Path, tmp_path: Path) -> None:
    flacs = sorted(_chapter(broken).glob("*.flac"))
    flacs[0].write_bytes(b"")
    _write(flacs[1], TONE[::2], rate=8000)
    summary = prepare_librispeech(broken, ["dev-clean"], tmp_path / "data", skip_bad=True)
    assert (summary.skipped, summary.utterances) == (2, {"dev_clean": 4})
    assert validate_data_dir(tmp_path / "data" / "dev_clean") == 4


def test_recording_of_two_hours_is_bad_input_named_with_its_length(
    broken: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unsegmented recording (two hours of silence, a few hundred KB of FLAC) in a chapter."""
    flac = sorted(_chapter(broken).glob("*.flac"))[0]
    with soundfile.SoundFile(flac, "w", 16000, 1, "PCM_16", format="FLAC") as f:
        minute = np.zeros(16000 * 60, dtype=np.int16)
        for _ in range(120):
            f.write(minute)
    with pytest.raises(DataPrepError, match=r"audio is 7200.0 s long, more than --max_seconds 60") as caught:
        prepare_librispeech(broken, ["dev-clean"], tmp_path / "data")
    assert caught.value.path == str(flac) and not (tmp_path / "data").exists()
    with caplog.at_level(logging.WARNING):
        assert prep_librispeech.main(["--root", str(broken), "--subsets", "dev-clean", "--out", str(tmp_path / "data"),
                                      "--skip-bad"]) == 0
    assert validate_data_dir(tmp_path / "data" / "dev_clean") == 5
    assert any("7200.0 s long" in r.getMessage() and flac.name in r.getMessage() for r in caplog.records)
    # a corpus of long recordings can raise the limit
    assert prep_librispeech.main(["--root", str(broken), "--subsets", "dev-clean", "--out", str(tmp_path / "all"),
                                  "--max_seconds", "10000"]) == 0
    assert validate_data_dir(tmp_path / "all" / "dev_clean") == 6


# ---------------------------------------------------------------------------------------------
# SLURP


def _record(slurp_id: int, files: list[str]) -> dict:
    return {
        "slurp_id": slurp_id,
        "sentence": "wake me up at five am",
        "sentence_annotation": "wake me up at [time : five am]",
        "intent": "alarm_set",
        "action": "set",
        "tokens": [{"surface": w, "id": i} for i, w in enumerate("wake me up at five am".split())],
        "scenario": "alarm",
        "recordings": [{"file": f} for f in files],
        "entities": [{"span": [4, 5], "type": "time"}],
    }


@pytest.fixture
def slurp(tmp_path: Path) -> Path:
    """A SLURP folder with a devel split of two records, three recordings, two speakers."""
    root = tmp_path / "slurp"
    dataset, audio = root / "dataset" / "slurp", root / "audio" / "slurp_real"
    dataset.mkdir(parents=True)
    audio.mkdir(parents=True)
    records = [_record(1, ["audio-1.flac", "audio-2.flac"]), _record(2, ["audio-3.flac"])]
    (dataset / "devel.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    usrids = {"audio-1.flac": "FO-1", "audio-2.flac": "MO-2", "audio-3.flac": "FO-1"}
    metadata = {str(r["slurp_id"]): {"recordings": {f["file"]: {"usrid": usrids[f["file"]]} for f in r["recordings"]}} for r in records}
    (dataset / "metadata.json").write_text(json.dumps(metadata))
    for file in usrids:
        _write(audio / file)
    return root


def test_slurp_jsonl_line_that_is_not_utf8(slurp: Path, tmp_path: Path) -> None:
    jsonl = slurp / "dataset" / "slurp" / "devel.jsonl"
    lines = jsonl.read_bytes().splitlines()
    jsonl.write_bytes(lines[0] + b"\n" + lines[1].replace(b"wake", b"w\xe4ke") + b"\n")
    with pytest.raises(DataPrepError, match="line is not UTF-8") as caught:
        prepare_slurp(slurp, tmp_path / "data", ["devel"])
    assert (caught.value.path, caught.value.line) == (str(jsonl), 2)
    assert prepare_slurp(slurp, tmp_path / "data", ["devel"], skip_bad=True).utterances == {"devel": 2}


def test_slurp_metadata_that_is_not_utf8(slurp: Path, tmp_path: Path) -> None:
    metadata = slurp / "dataset" / "slurp" / "metadata.json"
    metadata.write_bytes(metadata.read_bytes().replace(b"FO-1", b"F\xd6-1"))
    with pytest.raises(DataPrepError, match="not UTF-8") as caught:
        prepare_slurp(slurp, tmp_path / "data", ["devel"])
    assert caught.value.path == str(metadata)


@pytest.mark.parametrize("usrid", ["../x", "a/b", "..", "a\\b", "F O", ""])
def test_speaker_ids_that_could_escape_a_folder_are_refused(slurp: Path, tmp_path: Path, usrid: str) -> None:
    # a usrid starts every utterance id, and ESPnet's stages name files after utterance ids
    metadata = slurp / "dataset" / "slurp" / "metadata.json"
    records = json.loads(metadata.read_text())
    records["2"]["recordings"]["audio-3.flac"]["usrid"] = usrid
    metadata.write_text(json.dumps(records))
    with pytest.raises(DataPrepError, match=r"record '2' has an unexpected structure \(usrid") as caught:
        prepare_slurp(slurp, tmp_path / "data", ["devel"])
    assert caught.value.path == str(metadata)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("file", ["..flac", ".hidden.flac", "a b.flac", "..\\audio-1.flac", "/abs/audio-1.flac"])
def test_recording_names_that_are_not_plain_file_names(slurp: Path, tmp_path: Path, file: str) -> None:
    jsonl = slurp / "dataset" / "slurp" / "devel.jsonl"
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    records[1]["recordings"][0]["file"] = file
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(DataPrepError, match="is not a plain .flac file name") as caught:
        prepare_slurp(slurp, tmp_path / "data", ["devel"])
    assert (caught.value.path, caught.value.line) == (str(jsonl), 2)


def test_slurp_truncated_flac_caught_when_decoding(slurp: Path, tmp_path: Path) -> None:
    flac = slurp / "audio" / "slurp_real" / "audio-3.flac"
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    assert prepare_slurp(slurp, tmp_path / "headers", ["devel"]).utterances == {"devel": 3}
    with pytest.raises(DataPrepError, match="audio does not decode") as caught:
        prepare_slurp(slurp, tmp_path / "decoded", ["devel"], audio_policy=AudioPolicy(decode=True))
    assert (caught.value.path, caught.value.line) == (str(slurp / "dataset/slurp/devel.jsonl"), 2)
    assert str(flac) in str(caught.value)


def test_slurp_cli_exit_status_and_skip_bad(slurp: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (slurp / "audio" / "slurp_real" / "audio-2.flac").write_bytes(b"")
    argv = ["--slurp_root", str(slurp), "--splits", "devel", "--out", str(tmp_path / "data")]
    with caplog.at_level(logging.INFO):
        assert prep_slurp.main(argv) == 1
    assert f"{slurp / 'dataset/slurp/devel.jsonl'}:1: recording" in caplog.text
    assert not (tmp_path / "data" / "devel").exists()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert prep_slurp.main([*argv, "--skip-bad"]) == 0
    assert "skipped 1 bad input(s)" in caplog.text
    assert validate_data_dir(tmp_path / "data" / "devel", ["entities", "intent", "recording", "slurp_id", "transcript"]) == 2


@pytest.mark.parametrize("recipe", ["synth_librispeech/asr1", "synth_slurp/slu1"])
@pytest.mark.parametrize(
    "args,words",
    [(["--demo", "yes"], "--demo takes true or false"), (["--ci", "true", "--demo", "true"], "--ci and --demo are exclusive"),
     (["--standin", "hubert"], "--standin takes ssl or ctc"), (["--standin"], "--standin takes ssl or ctc")],
)
def test_recipe_mode_flags_are_checked_before_anything_runs(recipe, args, words):
    recipe = Path(__file__).resolve().parents[1] / "egs2" / recipe
    done = subprocess.run(["./run.sh", *args], cwd=recipe, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and words in done.stderr


def test_slu_demo_needs_the_self_supervised_stand_in():
    recipe = Path(__file__).resolve().parents[1] / "egs2" / "synth_slurp" / "slu1"
    done = subprocess.run(["./run.sh", "--demo", "true", "--standin", "ctc"], cwd=recipe, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--demo true needs --standin ssl" in done.stderr


@pytest.mark.parametrize(
    "args,chosen",
    [([], "the ssl stand-in; --expdir exp; results in RESULTS.md"),
     (["--standin", "ctc"], "the ctc stand-in; --expdir exp_ctc; results in RESULTS_ctc.md"),
     (["--demo", "true"], "the ssl stand-in; --expdir exp_demo --ssl_ckpt "),
     (["--ci", "true"], "the ctc stand-in; --datadir data_ci --expdir exp_ci; results in RESULTS_ci.md"),
     (["--ci", "true", "--standin", "ssl"], "--expdir exp_ci_ssl; results in RESULTS_ci_ssl.md")],
)
def test_slu_stand_in_defaults_to_the_self_supervised_one_except_in_ci(args, chosen):
    """Each stand-in writes its own directories: the CTC one's never mix with the default's."""
    recipe = Path(__file__).resolve().parents[1] / "egs2" / "synth_slurp" / "slu1"
    done = subprocess.run(["./run.sh", *args, "--stage", "11", "--stop_stage", "11"], cwd=recipe, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and chosen in done.stdout, done.stdout + done.stderr
