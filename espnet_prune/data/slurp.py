"""SLURP's on-disk layout, its `[type : filler]` annotations, SLU targets, and data prep.

    <slurp>/dataset/slurp/{train,devel,test,train_synthetic}.jsonl    one record per line
    <slurp>/dataset/slurp/metadata.json                               speaker (usrid) per recording
    <slurp>/audio/slurp_real/*.flac, <slurp>/audio/slurp_synth/*.flac

Each recording of a record is one utterance. A data directory gets, besides wav.scp/utt2spk/spk2utt:
    text        ESPnet slurp_entity's target `<scenario>_<action> SEP <type> FILL <filler> ... SEP
                <transcript>`, entities sorted by type
    intent      `<scenario>_<action>` (not the record's `intent` field, which sometimes differs)
    transcript  the sentence, normalised
    entities    JSON list of {"type", "filler"}, filler = the entity's token surfaces, lower-cased,
                joined by spaces, as SLURP's scorer takes the gold filler
    slurp_id    the record's id;  recording: the audio file name (SLURP's predictions name it)

The released text is accepted as it is: upper case in annotations, annotations whose text differs
from the sentence, fillers with '@', '.' or spaces, `audio--<digits>.flac` names.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from espnet_prune.data.audio import AudioPolicy, check_audio
from espnet_prune.data.datadir import PrepSummary, Utterance, write_data_dir
from espnet_prune.data.errors import BadInputLog, DataPrepError

logger = logging.getLogger(__name__)

DATASET_DIR = Path("dataset", "slurp")
REAL_AUDIO_DIR = Path("audio", "slurp_real")
SYNTH_AUDIO_DIR = Path("audio", "slurp_synth")
METADATA_FILE = "metadata.json"
SPLITS = ("train", "devel", "test")
SYNTHETIC_SPLIT = "train_synthetic"
SYNTHETIC_SPEAKER = "synthetic"  # as ESPnet's recipes name the speaker of slurp_synth audio
SEP = "SEP"
FILL = "FILL"

_ENTITY_TYPE = re.compile(r"[^\s\[\]:]+")
_AUDIO_FILE = re.compile(r"[^/\\\s]+\.flac")
_TRANSCRIPT_REPLACEMENTS = (("@", " at "), ("#", " hashtag "), (",", ""), (".", ""))


class AnnotationError(ValueError):
    """A `sentence_annotation` whose brackets are not well-formed `[type : filler]` markup."""


class SluTargetError(ValueError):
    """A string that is not an SLU target `<intent> SEP <type> FILL <filler> ... SEP <transcript>`."""


# ---------------------------------------------------------------------------------------------
# Annotations: "wake me up at [time : five am]" <-> plain text + character spans


@dataclass(frozen=True)
class Entity:
    """An entity as SLURP's scorer sees it."""

    type: str
    filler: str


@dataclass(frozen=True)
class AnnotatedEntity:
    """An annotated entity: its type and its characters [start, end) in the plain text."""

    type: str
    start: int
    end: int


@dataclass(frozen=True)
class Annotation:
    """A sentence annotation split into plain text and entity spans over that text."""

    text: str
    entities: tuple[AnnotatedEntity, ...]

    def fillers(self) -> list[Entity]:
        """The entities with their text as annotated."""
        return [Entity(e.type, self.text[e.start : e.end]) for e in self.entities]


def parse_annotation(annotation: str) -> Annotation:
    """Parse `[type : filler]` markup; AnnotationError if brackets are unbalanced, nested or empty.

    The type is what precedes the first ':' (fillers may hold ':' as in "5:30"); spaces around
    type and filler are not part of them.
    """
    plain: list[str] = []
    entities: list[AnnotatedEntity] = []
    length = 0
    position = 0
    while True:
        opening = annotation.find("[", position)
        closing = annotation.find("]", position)
        if opening == -1 or (closing != -1 and closing < opening):
            if closing != -1:
                raise AnnotationError(f"']' at column {closing + 1} has no '['")
            plain.append(annotation[position:])
            return Annotation("".join(plain), tuple(entities))
        if closing == -1:
            raise AnnotationError(f"'[' at column {opening + 1} is never closed")
        inner = annotation[opening + 1 : closing]
        if "[" in inner:
            raise AnnotationError(f"'[' at column {opening + 1} is not closed before the next '['")
        entity_type, colon, filler = (part.strip() for part in inner.partition(":"))
        if not colon or not _ENTITY_TYPE.fullmatch(entity_type) or not filler:
            raise AnnotationError(f"'[{inner}]' at column {opening + 1} is not '[type : filler]'")
        outside = annotation[position:opening]
        start = length + len(outside)
        plain += [outside, filler]
        entities.append(AnnotatedEntity(entity_type, start, start + len(filler)))
        length = start + len(filler)
        position = closing + 1


def format_annotation(annotation: Annotation) -> str:
    """Write an Annotation as SLURP's `[type : filler]` markup (inverse of parse_annotation)."""
    pieces = []
    position = 0
    for entity in annotation.entities:
        if entity.start < position or entity.end <= entity.start:
            raise ValueError(f"entity spans overlap, are out of order or empty: {entity}")
        pieces.append(annotation.text[position : entity.start])
        pieces.append(f"[{entity.type} : {annotation.text[entity.start : entity.end]}]")
        position = entity.end
    pieces.append(annotation.text[position:])
    return "".join(pieces)


# ---------------------------------------------------------------------------------------------
# SLU targets: "alarm_set SEP time FILL five am SEP wake me up at five am"


@dataclass(frozen=True)
class SluTarget:
    """What an SLU model predicts for an utterance."""

    intent: str
    entities: tuple[Entity, ...]
    transcript: str


def normalize_transcript(sentence: str) -> str:
    """The sentence as a transcript: ESPnet slurp_entity's clean-up ('@' -> "at", '#' -> "hashtag",
    no ',' or '.'), lower-cased, single spaces."""
    text = sentence.lower()
    for old, new in _TRANSCRIPT_REPLACEMENTS:
        text = text.replace(old, new)
    return " ".join(text.split())


def format_slu_target(target: SluTarget) -> str:
    """`<intent> SEP <type> FILL <filler> SEP ... SEP <transcript>`, entities sorted by type.

    ValueError for parts that would not parse back: an intent or type that is not one word, an
    empty filler or transcript, a part holding the words SEP or FILL, or uneven spacing.
    """
    _check_target_part(target.intent, "intent", one_word=True)
    for entity in target.entities:
        _check_target_part(entity.type, "entity type", one_word=True)
        _check_target_part(entity.filler, "filler", one_word=False)
    _check_target_part(target.transcript, "transcript", one_word=False)
    ordered = sorted(target.entities, key=lambda e: e.type)
    parts = [target.intent, *(f"{e.type} {FILL} {e.filler}" for e in ordered), target.transcript]
    return f" {SEP} ".join(parts)


def split_segments(text: str) -> list[list[str]]:
    """The words of an SLU target or hypothesis between its SEP tokens (at least one segment)."""
    segments: list[list[str]] = [[]]
    for word in text.split():
        if word == SEP:
            segments.append([])
        else:
            segments[-1].append(word)
    return segments


def parse_slu_target(text: str) -> SluTarget:
    """Parse an SLU target (spacing is normalised); SluTargetError if it is malformed."""
    segments = split_segments(text)
    if len(segments) < 2:
        raise SluTargetError(f"no {SEP} in {text!r}")
    intent, *entity_segments, transcript = segments
    if len(intent) != 1:
        raise SluTargetError(f"intent is not one word: {' '.join(intent)!r}")
    entities = tuple(_parse_entity_segment(segment) for segment in entity_segments)
    return SluTarget(intent[0], entities, " ".join(transcript))


def _parse_entity_segment(words: list[str]) -> Entity:
    if words.count(FILL) != 1 or words.index(FILL) != 1 or len(words) < 3:
        raise SluTargetError(f"entity is not '<type> {FILL} <filler>': {' '.join(words)!r}")
    return Entity(words[0], " ".join(words[2:]))


def _check_target_part(part: str, what: str, one_word: bool) -> None:
    words = part.split()
    if not words or " ".join(words) != part:
        raise ValueError(f"{what} {part!r} is empty or not single-spaced")
    if one_word and len(words) != 1:
        raise ValueError(f"{what} {part!r} is not one word")
    if SEP in words or FILL in words:
        raise ValueError(f"{what} {part!r} contains the word {SEP} or {FILL}")


# ---------------------------------------------------------------------------------------------
# Records of the jsonl files


@dataclass(frozen=True)
class Token:
    """A spaCy token of the sentence ("what's" is "what" + "'s")."""

    surface: str
    id: int
    lemma: str = ""
    pos: str = ""


@dataclass(frozen=True)
class Recording:
    """One audio file of a record; one utterance of a data directory."""

    file: str
    wer: float | None = None
    ent_wer: float | None = None
    status: str = ""


@dataclass(frozen=True)
class EntitySpan:
    """An entity of a record: token ids and type."""

    span: tuple[int, ...]
    type: str


@dataclass(frozen=True)
class SlurpRecord:
    """One line of a SLURP jsonl file; fields in the released files' order."""

    slurp_id: int
    sentence: str
    sentence_annotation: str
    intent: str
    action: str
    tokens: tuple[Token, ...]
    scenario: str
    recordings: tuple[Recording, ...]
    entities: tuple[EntitySpan, ...]

    @property
    def label(self) -> str:
        """The intent label to use: scenario + "_" + action."""
        return f"{self.scenario}_{self.action}"

    def gold_entities(self) -> list[Entity]:
        """Entities with the scorer's gold filler: token surfaces, lower-cased, space-joined."""
        surfaces = {token.id: token.surface for token in self.tokens}
        return [
            Entity(e.type, " ".join(" ".join(surfaces[i] for i in e.span).split()).lower())
            for e in self.entities
        ]

    def to_json(self) -> str:
        """The record as one jsonl line (without newline)."""
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


def parse_record(line: str) -> SlurpRecord:
    """Parse one jsonl line into a SlurpRecord; ValueError naming what is malformed."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"malformed JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(data, dict):
        raise ValueError("record is not a JSON object")
    return SlurpRecord(
        slurp_id=_field(data, "slurp_id", int),
        sentence=_field(data, "sentence", str),
        sentence_annotation=_field(data, "sentence_annotation", str),
        intent=_field(data, "intent", str),
        action=_field(data, "action", str),
        tokens=tuple(
            Token(
                surface=_field(t, "surface", str),
                id=_field(t, "id", int),
                lemma=_field(t, "lemma", str, ""),
                pos=_field(t, "pos", str, ""),
            )
            for t in _objects(data, "tokens")
        ),
        scenario=_field(data, "scenario", str),
        recordings=tuple(
            Recording(
                file=_field(r, "file", str),
                wer=_field(r, "wer", (int, float, type(None)), None),
                ent_wer=_field(r, "ent_wer", (int, float, type(None)), None),
                status=_field(r, "status", str, ""),
            )
            for r in _objects(data, "recordings")
        ),
        entities=tuple(
            EntitySpan(span=tuple(_integers(e, "span")), type=_field(e, "type", str))
            for e in _objects(data, "entities")
        ),
    )


_REQUIRED = object()


def _field(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
    if name not in obj:
        if default is _REQUIRED:
            raise ValueError(f"field {name!r} is missing")
        return default
    value = obj[name]
    # bool is an int to isinstance, never one here
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"field {name!r} has the wrong type: {value!r}")
    return value


def _objects(obj: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    items = _field(obj, name, list)
    if not all(isinstance(item, dict) for item in items):
        raise ValueError(f"field {name!r} is not a list of objects")
    return items


def _integers(obj: Mapping[str, Any], name: str) -> list[int]:
    items = _field(obj, name, list)
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise ValueError(f"field {name!r} is not a non-empty list of integers")
    return items


def check_record(record: SlurpRecord) -> tuple[SluTarget, Annotation]:
    """The record's SLU target and parsed annotation; ValueError if they cannot be trusted.

    Rejected: annotation markup that does not parse, annotation brackets that disagree with the
    `entities` field (count or types), spans over missing tokens, a scenario with '_' (the label
    would not split back), an empty sentence. Accepted as released: upper case in the annotation,
    and annotation text that differs from the sentence.
    """
    annotation = parse_annotation(record.sentence_annotation)
    bracket_types = sorted(e.type for e in annotation.entities)
    listed_types = sorted(e.type for e in record.entities)
    if bracket_types != listed_types:
        raise ValueError(f"annotation brackets {bracket_types} do not match the entities {listed_types}")
    token_ids = {token.id for token in record.tokens}
    for entity in record.entities:
        if not set(entity.span) <= token_ids:
            raise ValueError(f"entity span {list(entity.span)} refers to missing tokens")
    if not record.scenario or "_" in record.scenario or not record.action:
        raise ValueError(f"scenario {record.scenario!r} / action {record.action!r} make no label")
    target = SluTarget(
        intent=record.label,
        entities=tuple(record.gold_entities()),
        transcript=normalize_transcript(record.sentence),
    )
    format_slu_target(target)  # raises ValueError for parts that would not parse back
    return target, annotation


# ---------------------------------------------------------------------------------------------
# Data prep


def read_speakers(path: Path) -> dict[str, str]:
    """Speaker (usrid) of each recording file, from metadata.json."""
    try:
        records = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise DataPrepError(f"cannot read ({error.strerror})", path) from None
    except UnicodeDecodeError:
        raise DataPrepError("not UTF-8", path) from None
    except json.JSONDecodeError as error:
        raise DataPrepError(f"malformed JSON ({error.msg})", path, error.lineno) from None
    if not isinstance(records, dict):
        raise DataPrepError("top level is not an object of records", path)
    speakers = {}
    for key, record in records.items():
        try:
            for file, recording in record["recordings"].items():
                usrid = recording["usrid"]
                # a usrid starts every utterance id, which ESPnet's stages use as a file name
                if not isinstance(usrid, str) or usrid in ("", ".", "..") or any(c.isspace() or c in "/\\" for c in usrid):
                    raise ValueError(f"usrid {usrid!r} of {file}")
                speakers[file] = usrid
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise DataPrepError(f"record {key!r} has an unexpected structure ({error})", path) from None
    return speakers


def read_records(path: Path, bad: BadInputLog) -> Iterator[tuple[int, SlurpRecord]]:
    """Yield (line number, record) for each line of a jsonl file; bad lines go to `bad`."""
    for number, raw in enumerate(Path(path).read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield number, parse_record(raw.decode("utf-8"))
        except UnicodeDecodeError:
            bad.report(DataPrepError("line is not UTF-8", path, number))
        except ValueError as error:
            bad.report(DataPrepError(str(error), path, number))


@dataclass
class _SplitBuilder:
    """Collects one split's utterances, recording files seen, and how much the text deviated."""

    bad: BadInputLog
    audio_policy: AudioPolicy
    utterances: list[Utterance] = dataclasses.field(default_factory=list)
    seen_files: set[str] = dataclasses.field(default_factory=set)
    annotation_text_differs: int = 0

    def add_source(self, jsonl: Path, audio_dir: Path, speakers: Mapping[str, str] | None) -> None:
        """Add every recording of a jsonl file; `speakers` None means all are SYNTHETIC_SPEAKER."""
        for number, record in read_records(jsonl, self.bad):
            try:
                target, annotation = check_record(record)
            except ValueError as error:
                self.bad.report(DataPrepError(str(error), jsonl, number))
                continue
            if annotation.text.lower() != record.sentence.lower():
                self.annotation_text_differs += 1
            for recording in record.recordings:
                self._add_recording(record, recording, target, jsonl, number, audio_dir, speakers)

    def _add_recording(
        self,
        record: SlurpRecord,
        recording: Recording,
        target: SluTarget,
        jsonl: Path,
        number: int,
        audio_dir: Path,
        speakers: Mapping[str, str] | None,
    ) -> None:
        file = recording.file
        if not _AUDIO_FILE.fullmatch(file) or file.startswith("."):
            self.bad.report(
                DataPrepError(f"recording {file!r} is not a plain .flac file name", jsonl, number)
            )
            return
        if file in self.seen_files:
            logger.warning("%s:%d: recording %s already used; kept the first", jsonl, number, file)
            return
        speaker = SYNTHETIC_SPEAKER if speakers is None else speakers.get(file)
        if speaker is None:
            self.bad.report(
                DataPrepError(f"recording {file} has no speaker in {METADATA_FILE}", jsonl, number)
            )
            return
        try:
            check_audio(audio_dir / file, policy=self.audio_policy)
        except DataPrepError as error:
            self.bad.report(DataPrepError(f"recording {error.path}: {error.reason}", jsonl, number))
            return
        self.seen_files.add(file)
        entities = [dataclasses.asdict(e) for e in target.entities]
        self.utterances.append(
            Utterance(
                # speaker + "-" sorts like the speaker alone: '-' precedes letters and digits
                utt_id=f"{speaker}-{file[: -len('.flac')]}",
                speaker=speaker,
                audio=str((audio_dir / file).resolve()),
                text=format_slu_target(target),
                extra={
                    "intent": target.intent,
                    "transcript": target.transcript,
                    "entities": json.dumps(entities, ensure_ascii=False),
                    "slurp_id": str(record.slurp_id),
                    "recording": file,
                },
            )
        )


def prepare_slurp(
    slurp_root: Path,
    out_dir: Path,
    splits: Sequence[str] = SPLITS,
    include_synthetic: bool = True,
    skip_bad: bool = False,
    audio_policy: AudioPolicy = AudioPolicy(),
) -> PrepSummary:
    """Write `<out_dir>/<split>` for each split of SLURP at `slurp_root`.

    `train` also takes train_synthetic.jsonl (slurp_synth audio, speaker "synthetic") when it
    exists and `include_synthetic`, as ESPnet's SLURP recipes do. Each data directory appears
    only when complete. Bad input raises DataPrepError, or with `skip_bad` is logged, counted and
    left out.
    """
    root = Path(slurp_root)
    dataset = root / DATASET_DIR
    if not dataset.is_dir():
        raise DataPrepError(f"no {DATASET_DIR}/ folder (pass SLURP's root folder)", root)
    speakers = read_speakers(dataset / METADATA_FILE)
    bad = BadInputLog(skip_bad)
    written: dict[str, int] = {}
    for split in splits:
        jsonl = dataset / f"{split}.jsonl"
        if split not in SPLITS or not jsonl.is_file():
            raise DataPrepError(f"no split {split!r} (expected {SPLITS})", dataset)
        builder = _SplitBuilder(bad, audio_policy)
        builder.add_source(jsonl, root / REAL_AUDIO_DIR, speakers)
        synthetic = dataset / f"{SYNTHETIC_SPLIT}.jsonl"
        if split == "train" and include_synthetic and synthetic.is_file():
            builder.add_source(synthetic, root / SYNTH_AUDIO_DIR, None)
        if not builder.utterances:
            raise DataPrepError("no usable utterances", jsonl)
        if builder.annotation_text_differs:
            logger.info(
                "%s: %d annotations differ from their sentence beyond case (kept as released)",
                split,
                builder.annotation_text_differs,
            )
        write_data_dir(Path(out_dir) / split, builder.utterances)
        written[split] = len(builder.utterances)
        logger.info("%s: %d utterances", split, len(builder.utterances))
    return PrepSummary(written, bad.count)
