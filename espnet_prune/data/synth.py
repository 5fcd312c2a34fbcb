"""The synthetic corpus generator: LibriSpeech and SLURP on-disk layouts, with espeak-ng speech.

The same (layout, seed, size) gives the same bytes: every random choice comes from one
`random.Random` seeded by them, drawn in a fixed order, and each utterance's noise from its own
seed. The corpus is built in a temporary folder beside `out` and renamed into place when
complete, with `synth_corpus.json` recording what it is. Asking again for the corpus that is
already there does nothing; asking for a different one where another is raises
SynthOutputExistsError.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from espnet_prune.data import grammar, librispeech, slurp, slurp_grammar
from espnet_prune.data.atomic import atomic_directory
from espnet_prune.data.speech import SAMPLE_RATE, RenderJob, Voice, espeak_version, render_all, validate_voice

logger = logging.getLogger(__name__)

LAYOUTS = ("librispeech", "slurp")
SIZES = ("tiny", "ci", "small", "medium")  # tiny: a few dozen utterances, for tests
MARKER_FILE = "synth_corpus.json"
# Bumped when a layout's generator makes different bytes for the same request. SLURP 2: training
# speakers cover every accent x variant timbre (version 1 drew them at random: 24 draws from 68
# timbres left some test voices with a timbre one training speaker had), more speakers per split.
# LibriSpeech 2: a split train-clean-360 for self-supervised pretraining, drawn after the other
# subsets from version 1's random stream, so that theirs are the bytes of version 1.
GENERATOR_VERSIONS = {"librispeech": 2, "slurp": 2}
# the version whose random stream a layout's generator draws from
RNG_VERSIONS = {"librispeech": 1, "slurp": 2}

VARIANTS = (None, "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
            "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")  # fmt: skip
# US voices are the most intelligible ones: LibriSpeech's "clean" subsets get those.
LIBRISPEECH_VOICE_BASES = ("en-us", "en-us-nyc")
SLURP_VOICE_BASES = ("en-us", "en-us-nyc", "en-gb", "en-gb-x-rp")
PITCH_RANGE = (35, 65)
RATE_RANGE = (140, 185)
# slurp_synth audio comes from one TTS voice, as the released train_synthetic's does.
SLURP_TTS_VOICE = Voice("en-us", None, 50, 170)


class SynthOutputExistsError(FileExistsError):
    """The output folder holds something other than the requested corpus."""


@dataclass(frozen=True)
class SynthRequest:
    """What corpus to make. ``pretraining_split`` (LibriSpeech layout): also train-clean-360, the
    unlabelled audio of self-supervised pretraining; drawn last, so leaving it out leaves every
    other subset's bytes as they are."""

    layout: str
    seed: int
    size: str
    pretraining_split: bool = True


@dataclass(frozen=True)
class SubsetPlan:
    """A LibriSpeech subset: how many speakers, how many utterances each."""

    subset: str
    speakers: int
    utterances_per_speaker: int


@dataclass(frozen=True)
class SlurpPlan:
    """SLURP records and speakers per split (speakers disjoint between splits)."""

    records: Mapping[str, int]
    speakers: Mapping[str, int]
    synthetic_records: int


@dataclass(frozen=True)
class SlurpStyle:
    """How records get recorded, and how often the released data's quirks appear.

    So that even a tiny corpus has every quirk, the first records of each split get one for sure:
    record 0 a capitalised annotation, record 1 an `intent` unlike its label, record 2 "audio--".
    """

    second_session: float = 0.25  # a second speaker recorded the same sentence
    far_field: float = 0.5  # a session also has a far-field recording
    capitalised_annotation: float = 0.03  # "[date : Friday]" while the sentence says "friday"
    intent_is_action: float = 0.02  # `intent` says "query" where scenario_action is "weather_query"
    double_dash_file: float = 0.1  # "audio--1504194842.flac"


# train-clean-360 is the pretraining audio (its transcripts go unused): as LibriSpeech 960 h is to
# train-clean-100, more readers and sentences than the fine-tuning split. It comes last so that
# adding it left the other subsets' random draws, and bytes, as they were.
LIBRISPEECH_PLANS: dict[str, tuple[SubsetPlan, ...]] = {
    "tiny": (
        SubsetPlan("train-clean-100", 4, 6),
        SubsetPlan("dev-clean", 2, 3),
        SubsetPlan("test-clean", 2, 3),
        SubsetPlan("train-clean-360", 5, 2),
    ),
    "ci": (
        SubsetPlan("train-clean-100", 10, 20),
        SubsetPlan("dev-clean", 3, 15),
        SubsetPlan("test-clean", 3, 15),
        SubsetPlan("train-clean-360", 16, 15),
    ),
    "small": (
        SubsetPlan("train-clean-100", 40, 75),
        SubsetPlan("dev-clean", 8, 40),
        SubsetPlan("test-clean", 8, 40),
        SubsetPlan("train-clean-360", 120, 50),
    ),
    "medium": (
        SubsetPlan("train-clean-100", 80, 150),
        SubsetPlan("dev-clean", 10, 80),
        SubsetPlan("test-clean", 10, 80),
        SubsetPlan("train-clean-360", 240, 75),
    ),
}
SLURP_PLANS: dict[str, SlurpPlan] = {
    "tiny": SlurpPlan({"train": 12, "devel": 5, "test": 5}, {"train": 3, "devel": 2, "test": 2}, 3),
    "ci": SlurpPlan({"train": 90, "devel": 20, "test": 20}, {"train": 8, "devel": 3, "test": 3}, 10),
    "small": SlurpPlan({"train": 1400, "devel": 200, "test": 200}, {"train": 68, "devel": 10, "test": 10}, 100),
    "medium": SlurpPlan(
        {"train": 5000, "devel": 500, "test": 500}, {"train": 40, "devel": 8, "test": 8}, 300
    ),
}


def synthesize_corpus(
    request: SynthRequest, out: Path, workers: int | None = None, progress: bool = True
) -> bool:
    """Make the requested corpus at `out`; return False if it was already there (nothing done)."""
    if request.layout not in LAYOUTS or request.size not in SIZES:
        raise ValueError(f"unknown layout {request.layout!r} or size {request.size!r}")
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):  # an empty folder will do
        found, version = _read_marker(out)
        if found == request and version == GENERATOR_VERSIONS[request.layout]:
            logger.info("%s already holds this corpus (%s); nothing to do", out, request)
            return False
        if found == request:
            raise SynthOutputExistsError(
                f"{out} holds this corpus from generator version {version}; this is version "
                f"{GENERATOR_VERSIONS[request.layout]} of the {request.layout} generator, which makes "
                "another corpus: remove it or choose another --out"
            )
        raise SynthOutputExistsError(
            f"{out} exists and is not the requested corpus {asdict(request)}; "
            "remove it or choose another --out"
        )
    writer = _LAYOUT_WRITERS[request.layout]
    with atomic_directory(out) as tmp:
        summary = writer(tmp, request, workers or os.cpu_count() or 1, progress)
        marker = {
            **asdict(request),
            "generator_version": GENERATOR_VERSIONS[request.layout],
            "espeak_ng": espeak_version(),
            **summary,
        }
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s: %s", out, summary)
    return True


def _read_marker(out: Path) -> tuple[SynthRequest | None, int | None]:
    """The request and generator version recorded in `out`'s marker (None, None without one)."""
    try:
        marker = json.loads((out / MARKER_FILE).read_text(encoding="utf-8"))
        request = SynthRequest(marker["layout"], marker["seed"], marker["size"], marker.get("pretraining_split", True))
        return request, marker["generator_version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def corpus_rng(request: SynthRequest) -> random.Random:
    """The one source of randomness of a corpus."""
    return random.Random(
        f"espnet_prune.synth:{RNG_VERSIONS[request.layout]}:{request.layout}:{request.seed}:{request.size}"
    )


def draw_voices(
    rng: random.Random, number: int, bases: Sequence[str], taken: set[Voice], cover_timbres: bool = False
) -> list[Voice]:
    """`number` voices not in `taken` (which they join), each a different base/variant/pitch/rate.

    With `cover_timbres`, the (base, variant) timbres come from a shuffled cycle through all of them,
    so no timbre repeats before every one has a voice; otherwise each is drawn at random."""
    for base in bases:
        for variant in VARIANTS:
            validate_voice(Voice(base, variant, PITCH_RANGE[0], RATE_RANGE[0]))
    timbres: list[tuple[str, str | None]] = []
    voices = []
    while len(voices) < number:
        if cover_timbres:
            if not timbres:
                timbres = [(base, variant) for base in bases for variant in VARIANTS]
                rng.shuffle(timbres)
            base, variant = timbres.pop()
        else:
            base, variant = rng.choice(bases), rng.choice(VARIANTS)
        voice = Voice(base, variant, rng.randint(*PITCH_RANGE), rng.randint(*RATE_RANGE))
        if voice not in taken:
            taken.add(voice)
            voices.append(voice)
    return voices


def _distinct_integers(rng: random.Random, low: int, high: int) -> Callable[[], int]:
    """A function drawing integers in [low, high) that never repeats one."""
    seen: set[int] = set()

    def draw() -> int:
        while (value := rng.randrange(low, high)) in seen:
            pass
        seen.add(value)
        return value

    return draw


def _minutes(samples: int) -> float:
    return samples / SAMPLE_RATE / 60


# ---------------------------------------------------------------------------------------------
# LibriSpeech


@dataclass(frozen=True)
class _Chapter:
    speaker: int
    chapter: int
    subset: str
    book: int
    utterances: tuple[tuple[str, str], ...]  # (utterance id, transcript)


def write_librispeech(root: Path, request: SynthRequest, workers: int, progress: bool) -> dict[str, object]:
    """Write `<root>/LibriSpeech/...` as the real corpus lays it out; return a summary."""
    rng = corpus_rng(request)
    corpus = root / librispeech.CORPUS_DIR
    plans = [p for p in LIBRISPEECH_PLANS[request.size] if request.pretraining_split or p.subset != "train-clean-360"]
    taken: set[Voice] = set()
    speaker_id = _distinct_integers(rng, 14, 9000)
    chapter_id = _distinct_integers(rng, 1000, 200000)
    book_id = _distinct_integers(rng, 10, 30000)
    books = {book_id(): _book_title(rng) for _ in range(6)}
    speakers: list[tuple[int, Voice, str]] = []  # (id, voice, subset)
    chapters: list[_Chapter] = []
    jobs: list[RenderJob] = []
    for plan in plans:
        for voice in draw_voices(rng, plan.speakers, LIBRISPEECH_VOICE_BASES, taken):
            speaker = speaker_id()
            speakers.append((speaker, voice, plan.subset))
            for size in _split_in_chapters(rng, plan.utterances_per_speaker):
                chapter = chapter_id()
                folder = corpus / plan.subset / str(speaker) / str(chapter)
                folder.mkdir(parents=True)
                utterances = tuple(
                    (f"{speaker}-{chapter}-{index:04d}", grammar.sentence(rng)) for index in range(size)
                )
                for utt_id, text in utterances:
                    # Lower case: espeak-ng spells out some all-capital words letter by letter.
                    jobs.append(
                        RenderJob(text.lower(), voice, str(folder / f"{utt_id}.flac"), rng.getrandbits(63))
                    )
                chapters.append(
                    _Chapter(speaker, chapter, plan.subset, rng.choice(sorted(books)), utterances)
                )
    samples = dict(
        zip(
            (Path(job.path).stem for job in jobs),
            render_all(jobs, workers, progress, "librispeech"),
            strict=True,
        )
    )
    for chapter in chapters:
        folder = corpus / chapter.subset / str(chapter.speaker) / str(chapter.chapter)
        lines = [librispeech.format_transcript_line(u, t) for u, t in chapter.utterances]
        (folder / f"{chapter.speaker}-{chapter.chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    chapter_minutes = {c.chapter: _minutes(sum(samples[u] for u, _ in c.utterances)) for c in chapters}
    speaker_minutes: dict[int, float] = defaultdict(float)
    for chapter in chapters:
        speaker_minutes[chapter.speaker] += chapter_minutes[chapter.chapter]
    _write_librispeech_metadata(corpus, speakers, speaker_minutes, chapters, chapter_minutes, books)
    return {
        "utterances": {plan.subset: plan.speakers * plan.utterances_per_speaker for plan in plans},
        "hours": round(sum(samples.values()) / SAMPLE_RATE / 3600, 3),
    }


def _split_in_chapters(rng: random.Random, utterances: int) -> list[int]:
    # Real readers have one or a few chapters; several chapters make <spk>-<chap> speakers matter.
    if utterances >= 4 and rng.random() < 0.5:
        first = rng.randint(2, utterances - 2)
        return [first, utterances - first]
    return [utterances]


def _book_title(rng: random.Random) -> str:
    return f"The {rng.choice(grammar.ADJECTIVES)} {rng.choice(grammar.NOUNS)[0]}".title()


def _write_librispeech_metadata(
    corpus: Path,
    speakers: Sequence[tuple[int, Voice, str]],
    speaker_minutes: Mapping[int, float],
    chapters: Sequence[_Chapter],
    chapter_minutes: Mapping[int, float],
    books: Mapping[int, str],
) -> None:
    speaker_lines = [
        librispeech.format_speaker_line(
            # Real names may contain '|' (one does); these all do, so readers must split at most 4 times.
            librispeech.SpeakerInfo(
                spk, voice.sex, subset, speaker_minutes[spk], f"{voice.name} | p{voice.pitch} s{voice.rate}"
            )
        )
        for spk, voice, subset in sorted(speakers, key=lambda s: s[0])
    ]
    (corpus / "SPEAKERS.TXT").write_text(
        "; Synthetic readers: espeak-ng voices (voice | pitch, rate).\n"
        f"{librispeech.SPEAKERS_HEADER}\n" + "\n".join(speaker_lines) + "\n"
    )
    chapter_lines = [
        f"{c.chapter:<8} | {c.speaker:<6} | {chapter_minutes[c.chapter]:5.2f} | {c.subset:<16} | "
        f"{c.book % 9000:5} | {c.book:<6} | Chapter {c.chapter % 100:02d} | {books[c.book]}"
        for c in sorted(chapters, key=lambda c: c.chapter)
    ]
    (corpus / "CHAPTERS.TXT").write_text(
        "; Synthetic chapters: sentences of espnet_prune's grammar.\n"
        f"{librispeech.CHAPTERS_HEADER}\n" + "\n".join(chapter_lines) + "\n"
    )
    book_lines = [f"{book:<6} | {title}" for book, title in sorted(books.items())]
    (corpus / "BOOKS.TXT").write_text(";ID    | TITLE\n" + "\n".join(book_lines) + "\n")
    (corpus / "README.TXT").write_text(
        "A synthetic corpus in LibriSpeech's layout, generated by espnet_prune's synth_corpus:\n"
        "sentences from a small grammar, spoken by espeak-ng voices (one voice, pitch and rate per\n"
        "reader), 16 kHz mono 16-bit FLAC. Transcripts are normalised like LibriSpeech's (upper\n"
        "case, numbers as words). Readers are disjoint between subsets.\n"
    )
    (corpus / "LICENSE.TXT").write_text(
        "This synthetic corpus contains no recordings of people. It is released under the\n"
        "Creative Commons Attribution 4.0 licence (CC BY 4.0), as LibriSpeech is.\n"
    )


# ---------------------------------------------------------------------------------------------
# SLURP


@dataclass(frozen=True)
class _SlurpSpeaker:
    usrid: str
    voice: Voice


def write_slurp(root: Path, request: SynthRequest, workers: int, progress: bool) -> dict[str, object]:
    """Write SLURP's `dataset/slurp/*.jsonl`, `metadata.json` and `audio/`; return a summary."""
    rng = corpus_rng(request)
    plan = SLURP_PLANS[request.size]
    style = SlurpStyle()
    dataset = root / slurp.DATASET_DIR
    real_audio, synth_audio = root / slurp.REAL_AUDIO_DIR, root / slurp.SYNTH_AUDIO_DIR
    for folder in (dataset, real_audio, synth_audio):
        folder.mkdir(parents=True)
    taken = {SLURP_TTS_VOICE}
    user_number = _distinct_integers(rng, 100, 1000)
    slurp_id = _distinct_integers(rng, 1, 20000)
    timestamp = _distinct_integers(rng, 1_434_000_000, 1_510_000_000)
    metadata: dict[str, dict[str, object]] = {}
    jobs: list[RenderJob] = []
    counts: dict[str, int] = {}
    for split, records in plan.records.items():
        speakers = [
            _SlurpSpeaker(f"{voice.sex}O-{user_number()}", voice)
            for voice in draw_voices(rng, plan.speakers[split], SLURP_VOICE_BASES, taken, cover_timbres=split == "train")
        ]
        lines = []
        for index in range(records):
            record, record_jobs, usrids = _real_record(
                rng, style, index, slurp_id(), timestamp, speakers, real_audio
            )
            lines.append(record.to_json())
            jobs += record_jobs
            metadata[str(record.slurp_id)] = {
                "slurp_id": record.slurp_id,
                "sentence": record.sentence,
                "recordings": {file: {"usrid": usrid, "status": "correct"} for file, usrid in usrids.items()},
            }
            counts[split] = counts.get(split, 0) + len(record_jobs)
        (dataset / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    synthetic_lines = []
    for _ in range(plan.synthetic_records):
        command = slurp_grammar.generate_command(rng, rng.choice(slurp_grammar.INTENTS))
        file = f"audio-{timestamp()}.flac"
        jobs.append(
            RenderJob(command.sentence, SLURP_TTS_VOICE, str(synth_audio / file), rng.getrandbits(63))
        )
        synthetic_lines.append(
            _record(command, slurp_id(), command.scenario + "_" + command.action, [file]).to_json()
        )
    counts[slurp.SYNTHETIC_SPLIT] = plan.synthetic_records
    (dataset / f"{slurp.SYNTHETIC_SPLIT}.jsonl").write_text(
        "\n".join(synthetic_lines) + "\n", encoding="utf-8"
    )
    (dataset / slurp.METADATA_FILE).write_text(
        json.dumps(metadata, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    samples = render_all(jobs, workers, progress, "slurp")
    return {"utterances": counts, "hours": round(sum(samples) / SAMPLE_RATE / 3600, 3)}


def _real_record(
    rng: random.Random,
    style: SlurpStyle,
    index: int,
    record_id: int,
    timestamp: Callable[[], int],
    speakers: Sequence[_SlurpSpeaker],
    audio_dir: Path,
) -> tuple[slurp.SlurpRecord, list[RenderJob], dict[str, str]]:
    """One record of a split, the jobs rendering its recordings (sessions of distinct speakers),
    and the speaker of each recording file."""
    capitalised = index == 0 or rng.random() < style.capitalised_annotation
    command = slurp_grammar.generate_command(rng, rng.choice(slurp_grammar.INTENTS), capitalised)
    intent_is_action = index == 1 or rng.random() < style.intent_is_action
    intent = command.action if intent_is_action else f"{command.scenario}_{command.action}"
    sessions = 2 if len(speakers) > 1 and rng.random() < style.second_session else 1
    jobs = []
    usrids = {}
    for speaker in rng.sample(list(speakers), sessions):
        dashes = "--" if index == 2 or rng.random() < style.double_dash_file else "-"
        stem = f"audio{dashes}{timestamp()}"
        names = [f"{stem}-headset.flac"] + ([f"{stem}.flac"] if rng.random() < style.far_field else [])
        for name in names:
            far_field = not name.endswith("-headset.flac")
            jobs.append(
                RenderJob(
                    command.sentence, speaker.voice, str(audio_dir / name), rng.getrandbits(63), far_field
                )
            )
            usrids[name] = speaker.usrid
    return _record(command, record_id, intent, list(usrids)), jobs, usrids


def _record(
    command: slurp_grammar.Command, record_id: int, intent: str, files: Sequence[str]
) -> slurp.SlurpRecord:
    has_entities = bool(command.entity_spans)
    return slurp.SlurpRecord(
        slurp_id=record_id,
        sentence=command.sentence,
        sentence_annotation=command.annotation,
        intent=intent,
        action=command.action,
        tokens=command.tokens,
        scenario=command.scenario,
        recordings=tuple(slurp.Recording(f, 0.0, 0.0 if has_entities else None, "correct") for f in files),
        entities=tuple(slurp.EntitySpan(span, entity_type) for entity_type, span in command.entity_spans),
    )


_LAYOUT_WRITERS: dict[str, Callable[[Path, SynthRequest, int, bool], dict[str, object]]] = {
    "librispeech": write_librispeech,
    "slurp": write_slurp,
}
