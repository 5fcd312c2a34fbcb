"""The synthetic corpus generator: layouts, speech, grammar, determinism, safe output."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from espnet_prune.bin import synth_corpus
from espnet_prune.data import grammar, slurp_grammar, speech, synth
from espnet_prune.data.librispeech import read_speakers
from espnet_prune.data.slurp import parse_annotation, parse_record
from espnet_prune.data.speech import Voice, validate_voice
from espnet_prune.data.synth import SynthOutputExistsError, SynthRequest, synthesize_corpus

LIBRISPEECH_TINY = SynthRequest("librispeech", 7, "tiny")
SLURP_TINY = SynthRequest("slurp", 7, "tiny")


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def librispeech_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ls") / "corpus"
    options = "--layout librispeech --seed 7 --size tiny --nj 2 --no_progress".split()
    assert synth_corpus.main([*options, "--out", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def slurp_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slurp") / "corpus"
    assert synthesize_corpus(SLURP_TINY, root, workers=2, progress=False)
    return root


@pytest.mark.parametrize("request_", [LIBRISPEECH_TINY, SLURP_TINY], ids=lambda r: r.layout)
def test_same_seed_same_bytes_whatever_the_number_of_workers(
    request_: SynthRequest, librispeech_corpus: Path, slurp_corpus: Path, tmp_path: Path
) -> None:
    first = librispeech_corpus if request_.layout == "librispeech" else slurp_corpus
    synthesize_corpus(request_, tmp_path / "again", workers=1, progress=False)
    assert _digests(tmp_path / "again") == _digests(first)
    synthesize_corpus(
        SynthRequest(request_.layout, 8, "tiny"), tmp_path / "other_seed", workers=2, progress=False
    )
    other = _digests(tmp_path / "other_seed")
    assert other != _digests(first)


def test_librispeech_layout_is_the_real_one(librispeech_corpus: Path) -> None:
    corpus = librispeech_corpus / "LibriSpeech"
    assert {p.name for p in corpus.iterdir()} == {
        "LICENSE.TXT",
        "README.TXT",
        "SPEAKERS.TXT",
        "CHAPTERS.TXT",
        "BOOKS.TXT",
        "train-clean-100",
        "dev-clean",
        "test-clean",
        "train-clean-360",
    }
    speakers = read_speakers(corpus / "SPEAKERS.TXT")
    subset_of_speaker: dict[int, str] = {}
    for flac in corpus.glob("*/*/*/*.flac"):
        subset, speaker, chapter = flac.parts[-4:-1]
        assert re.fullmatch(rf"{speaker}-{chapter}-\d{{4}}\.flac", flac.name)
        assert subset_of_speaker.setdefault(int(speaker), subset) == subset  # speakers disjoint
        assert speakers[int(speaker)].subset == subset
        info = soundfile.info(flac)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "FLAC")
    assert len(subset_of_speaker) == len(speakers) == 13
    assert all("|" in info.name for info in speakers.values())  # names with '|', as one real one has
    for trans in corpus.glob("*/*/*/*.trans.txt"):
        lines = trans.read_text().splitlines()
        ids = [line.split()[0] for line in lines]
        assert ids == sorted(ids) and all(i.startswith(trans.name[: -len(".trans.txt")] + "-") for i in ids)
        assert ids == sorted(p.name[: -len(".flac")] for p in trans.parent.glob("*.flac"))


def test_librispeech_transcripts_are_normalised_like_librispeech(librispeech_corpus: Path) -> None:
    lines = [line for t in librispeech_corpus.rglob("*.trans.txt") for line in t.read_text().splitlines()]
    assert len(lines) == 46
    for line in lines:
        words = line.split(" ")[1:]
        assert all(re.fullmatch(r"[A-Z']+", w) for w in words), line
        assert 3 <= len(words) <= 12


def test_audio_is_padded_with_a_faint_noise_floor_and_does_not_clip(librispeech_corpus: Path) -> None:
    flac = next(librispeech_corpus.rglob("*.flac"))
    samples, rate = soundfile.read(flac, dtype="int16")
    pad = int(speech.PAD_SECONDS * rate)
    assert 0 < abs(samples[: pad // 2]).max() < 100  # noise, not digital silence, not speech
    assert abs(samples).max() < 32767
    assert abs(samples[pad:-pad]).max() > 3000  # speech


def test_slurp_layout_has_the_real_fields_and_disjoint_speakers(slurp_corpus: Path) -> None:
    dataset = slurp_corpus / "dataset" / "slurp"
    assert {p.name for p in dataset.iterdir()} == {
        "train.jsonl",
        "devel.jsonl",
        "test.jsonl",
        "train_synthetic.jsonl",
        "metadata.json",
    }
    metadata = json.loads((dataset / "metadata.json").read_text())
    speakers_of_split = {}
    for split in ("train", "devel", "test"):
        lines = (dataset / f"{split}.jsonl").read_text().splitlines()
        assert list(json.loads(lines[0])) == [
            "slurp_id",
            "sentence",
            "sentence_annotation",
            "intent",
            "action",
            "tokens",
            "scenario",
            "recordings",
            "entities",
        ]
        speakers = set()
        for line in lines:
            record = parse_record(line)
            annotation = parse_annotation(record.sentence_annotation)
            assert annotation.text.lower() == record.sentence
            surfaces = [t.surface for t in record.tokens]
            assert (
                " ".join(surfaces).replace(" '", "'").lower() == record.sentence
            )  # clitics split, like spaCy
            for annotated, gold, span in zip(
                annotation.fillers(), record.gold_entities(), record.entities, strict=True
            ):
                assert annotated.type == gold.type == span.type
                assert annotated.filler.lower() == gold.filler.replace(" '", "'")
            for recording in record.recordings:
                assert (slurp_corpus / "audio" / "slurp_real" / recording.file).is_file()
                speakers.add(metadata[str(record.slurp_id)]["recordings"][recording.file]["usrid"])
        speakers_of_split[split] = speakers
    assert not speakers_of_split["train"] & (speakers_of_split["devel"] | speakers_of_split["test"])
    assert not speakers_of_split["devel"] & speakers_of_split["test"]
    for line in (dataset / "train_synthetic.jsonl").read_text().splitlines():
        for recording in parse_record(line).recordings:
            assert (slurp_corpus / "audio" / "slurp_synth" / recording.file).is_file()


def test_slurp_grammar_is_big_enough_and_its_spans_agree() -> None:
    assert len({i.scenario for i in slurp_grammar.INTENTS}) >= 8
    assert len({i.label for i in slurp_grammar.INTENTS}) == len(slurp_grammar.INTENTS) >= 12
    assert len(slurp_grammar.slot_types()) >= 8
    rng = random.Random(0)
    for intent in slurp_grammar.INTENTS:
        for capitalise in [False] * 10 + [True] * 10:
            command = slurp_grammar.generate_command(rng, intent, capitalise)
            surfaces = [t.surface for t in command.tokens]
            annotation = parse_annotation(command.annotation)
            assert annotation.text.lower() == command.sentence
            assert (annotation.text != command.sentence) == capitalise
            for (entity_type, span), annotated in zip(
                command.entity_spans, annotation.fillers(), strict=True
            ):
                assert entity_type == annotated.type
                assert " ".join(surfaces[i] for i in span).replace(" '", "'") == annotated.filler


def test_tokenize_splits_clitics_like_spacy() -> None:
    tokens = slurp_grammar.tokenize("what's on at domino's don't")
    assert " ".join(tokens) == "what 's on at domino 's do n't"


def test_librispeech_grammar_has_a_few_hundred_words_and_short_sentences() -> None:
    vocabulary = grammar.vocabulary()
    assert 200 <= len(vocabulary) <= 500
    rng = random.Random(1)
    sentences = [grammar.sentence(rng) for _ in range(2000)]
    assert {w for s in sentences for w in s.split()} <= vocabulary
    assert min(len(s.split()) for s in sentences) == 3 and max(len(s.split()) for s in sentences) <= 12
    assert len(set(sentences)) > 1900


def test_number_to_words() -> None:
    assert [grammar.number_to_words(n) for n in (0, 7, 13, 20, 21, 99)] == [
        "ZERO",
        "SEVEN",
        "THIRTEEN",
        "TWENTY",
        "TWENTY ONE",
        "NINETY NINE",
    ]
    with pytest.raises(ValueError):
        grammar.number_to_words(100)


def test_size_plans_match_their_purpose() -> None:
    def librispeech_utterances(size: str, subset: str) -> int:
        plan = next(p for p in synth.LIBRISPEECH_PLANS[size] if p.subset == subset)
        return plan.speakers * plan.utterances_per_speaker

    assert 150 <= librispeech_utterances("ci", "train-clean-100") <= 300
    assert 2500 <= librispeech_utterances("small", "train-clean-100") <= 3500
    for size in synth.SIZES:  # the pretraining audio: more readers and sentences than fine-tuning's
        plans = {p.subset: p for p in synth.LIBRISPEECH_PLANS[size]}
        assert plans["train-clean-360"].speakers > plans["train-clean-100"].speakers
        if size != "tiny":  # tiny: as few utterances as a test needs
            assert librispeech_utterances(size, "train-clean-360") > librispeech_utterances(size, "train-clean-100")
    assert sum(synth.SLURP_PLANS["ci"].records.values()) <= 200  # ~1.6 recordings each


def test_the_first_utterance_in_a_fresh_home_is_spoken_as_every_later_one(tmp_path: Path) -> None:
    # espeak-ng's first synthesis in a HOME without ~/.config/pulse comes out different (a fresh
    # GPU or CI machine); the corpus must not depend on that
    script = (
        "import sys, hashlib; from espnet_prune.data.speech import Voice, espeak_samples\n"
        "v = Voice('en-us', 'f3', 40, 160)\n"
        "print(*(hashlib.md5(espeak_samples('set an alarm for seven', v).tobytes()).hexdigest() for _ in range(2)))\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    first, second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert first == second


def test_unknown_voices_are_rejected_not_silently_replaced() -> None:
    validate_voice(Voice("en-us", "f3", 50, 160))
    for voice in (
        Voice("en-us", "m99", 50, 160),
        Voice("en-xx", None, 50, 160),
        Voice("en-us", None, 120, 160),
    ):
        with pytest.raises(ValueError):
            validate_voice(voice)
    assert Voice("en-gb", "f2", 50, 160).sex == "F" and Voice("en-gb", "klatt", 50, 160).sex == "M"


def test_training_voices_cover_every_timbre_before_any_repeats() -> None:
    import random

    bases = synth.SLURP_VOICE_BASES
    timbres = len(bases) * len(synth.VARIANTS)
    voices = synth.draw_voices(random.Random(0), timbres + 5, bases, set(), cover_timbres=True)
    assert len({(v.base, v.variant) for v in voices[:timbres]}) == timbres
    assert len(set(voices)) == timbres + 5


def test_a_corpus_from_an_older_generator_is_refused_not_reused(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    out.mkdir()
    old = {"layout": "slurp", "seed": 7, "size": "tiny", "generator_version": synth.GENERATOR_VERSIONS["slurp"] - 1}
    (out / synth.MARKER_FILE).write_text(json.dumps(old))
    with pytest.raises(SynthOutputExistsError, match="generator version"):
        synthesize_corpus(SLURP_TINY, out, progress=False)
    assert [p.name for p in out.iterdir()] == [synth.MARKER_FILE]


def test_rerun_is_a_no_op_and_another_corpus_is_refused(librispeech_corpus: Path, tmp_path: Path) -> None:
    before = _digests(librispeech_corpus)
    assert synthesize_corpus(LIBRISPEECH_TINY, librispeech_corpus, workers=2, progress=False) is False
    with pytest.raises(SynthOutputExistsError, match="not the requested corpus"):
        synthesize_corpus(SynthRequest("librispeech", 8, "tiny"), librispeech_corpus, progress=False)
    argv = ["--layout", "slurp", "--out", str(librispeech_corpus), "--size", "tiny", "--no_progress"]
    assert synth_corpus.main(argv) == 1
    assert _digests(librispeech_corpus) == before
    (tmp_path / "not_a_corpus").mkdir()
    (tmp_path / "not_a_corpus" / "notes.txt").write_text("mine\n")
    with pytest.raises(SynthOutputExistsError):
        synthesize_corpus(LIBRISPEECH_TINY, tmp_path / "not_a_corpus", progress=False)
    assert [p.name for p in (tmp_path / "not_a_corpus").iterdir()] == ["notes.txt"]
    (tmp_path / "empty").mkdir()  # an empty folder is taken as no corpus yet
    assert synthesize_corpus(LIBRISPEECH_TINY, tmp_path / "empty", workers=2, progress=False)
    assert _digests(tmp_path / "empty") == before


def test_a_failed_run_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> list[int]:
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "render_all", fail)
    with pytest.raises(KeyboardInterrupt):
        synthesize_corpus(SLURP_TINY, tmp_path / "corpus", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_marker_records_what_was_made(librispeech_corpus: Path) -> None:
    marker = json.loads((librispeech_corpus / synth.MARKER_FILE).read_text())
    assert (marker["layout"], marker["seed"], marker["size"]) == ("librispeech", 7, "tiny")
    assert marker["utterances"] == {"train-clean-100": 24, "dev-clean": 6, "test-clean": 6, "train-clean-360": 10}
    assert marker["espeak_ng"].startswith("eSpeak NG")


def test_without_the_pretraining_split_the_other_subsets_are_the_same_bytes(librispeech_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "labelled"
    argv = "--layout librispeech --seed 7 --size tiny --nj 2 --no_progress --no_pretraining_split".split()
    assert synth_corpus.main([*argv, "--out", str(out)]) == 0
    audio = {k: v for k, v in _digests(out).items() if k.endswith(".flac")}
    full = _digests(librispeech_corpus)
    assert audio and all(full[k] == v for k, v in audio.items())
    assert not any("train-clean-360" in k for k in _digests(out))
    assert {k for k in full if k.endswith(".flac") and "train-clean-360" not in k} == set(audio)
    marker = json.loads((out / synth.MARKER_FILE).read_text())
    assert marker["pretraining_split"] is False and "train-clean-360" not in marker["utterances"]
    assert synth_corpus.main([*argv, "--out", str(out)]) == 0  # the same request: nothing to do
    with pytest.raises(SynthOutputExistsError, match="not the requested corpus"):
        synthesize_corpus(LIBRISPEECH_TINY, out, progress=False)  # with the split: another corpus
