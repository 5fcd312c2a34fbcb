"""SLURP: annotation and SLU-target parsing, the released data's quirks, data prep and bad input."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from espnet_prune.bin import prep_slurp
from espnet_prune.data.datadir import read_table, validate_data_dir
from espnet_prune.data.errors import DataPrepError
from espnet_prune.data.slurp import (
    SYNTHETIC_SPEAKER,
    AnnotatedEntity,
    Annotation,
    AnnotationError,
    Entity,
    SluTarget,
    SluTargetError,
    check_record,
    format_annotation,
    format_slu_target,
    normalize_transcript,
    parse_annotation,
    parse_record,
    parse_slu_target,
    prepare_slurp,
)
from espnet_prune.data.synth import SynthRequest, synthesize_corpus

# Example timing varies on a loaded machine; the properties checked do not.
NO_DEADLINE = settings(deadline=None)

TARGET_TABLES = ["entities", "intent", "recording", "slurp_id", "transcript"]

# ---------------------------------------------------------------------------------------------
# Annotations


def test_parse_annotation_gives_plain_text_and_spans() -> None:
    annotation = parse_annotation(
        "siri what is one [currency_name : american dollar] in [currency_name : yen]"
    )
    assert annotation.text == "siri what is one american dollar in yen"
    assert annotation.fillers() == [
        Entity("currency_name", "american dollar"),
        Entity("currency_name", "yen"),
    ]
    assert annotation.entities[1] == AnnotatedEntity("currency_name", 36, 39)


def test_parse_annotation_keeps_punctuation_next_to_brackets_and_colons_in_fillers() -> None:
    annotation = parse_annotation("send email to [person : robert], what time is [time : 5:30 pm]")
    assert annotation.text == "send email to robert, what time is 5:30 pm"
    assert annotation.fillers() == [Entity("person", "robert"), Entity("time", "5:30 pm")]


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        ("wake me up [time : five am", "never closed"),
        ("wake me up time : five am]", "has no '\\['"),
        ("[date : [time : five am]]", "not closed before the next"),
        ("wake me up [five am]", "is not '\\[type : filler\\]'"),
        ("wake me up [ : five am]", "is not '\\[type : filler\\]'"),
        ("wake me up [time : ]", "is not '\\[type : filler\\]'"),
        ("wake me up [time of day : five]", "is not '\\[type : filler\\]'"),
    ],
)
def test_malformed_annotations_are_rejected(annotation: str, words: str) -> None:
    with pytest.raises(AnnotationError, match=words):
        parse_annotation(annotation)


_PLAIN = st.text(st.characters(blacklist_characters="[]", blacklist_categories=("Cs",)), max_size=12)
_TYPE = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
_FILLER = st.text(
    st.characters(blacklist_characters="[]", blacklist_categories=("Cs",)), min_size=1, max_size=12
).filter(lambda f: f == f.strip() and f.strip() != "")


@st.composite
def annotations(draw: st.DrawFn) -> Annotation:
    """Plain text with non-overlapping typed spans, built piece by piece."""
    text, entities = draw(_PLAIN), []
    for _ in range(draw(st.integers(0, 4))):
        filler, entity_type = draw(_FILLER), draw(_TYPE)
        entities.append(AnnotatedEntity(entity_type, len(text), len(text) + len(filler)))
        text += filler + draw(_PLAIN)
    return Annotation(text, tuple(entities))


@NO_DEADLINE
@given(annotation=annotations())
def test_annotations_round_trip_to_spans_and_back(annotation: Annotation) -> None:
    markup = format_annotation(annotation)
    assert parse_annotation(markup) == annotation
    assert format_annotation(parse_annotation(markup)) == markup


@NO_DEADLINE
@given(text=st.text(alphabet=st.sampled_from("ab :[]_"), max_size=30))
def test_annotation_parser_accepts_or_raises_annotation_error(text: str) -> None:
    try:
        annotation = parse_annotation(text)
    except AnnotationError:
        return
    assert "[" not in annotation.text and "]" not in annotation.text
    assert text.count("[") == len(annotation.entities)


# ---------------------------------------------------------------------------------------------
# SLU targets


def test_slu_target_is_espnets_slurp_entity_format_with_entities_sorted_by_type() -> None:
    target = SluTarget(
        "alarm_set", (Entity("time", "five am"), Entity("date", "friday")), "wake me up friday at five am"
    )
    text = format_slu_target(target)
    assert text == "alarm_set SEP date FILL friday SEP time FILL five am SEP wake me up friday at five am"
    assert parse_slu_target(text) == SluTarget("alarm_set", target.entities[::-1], target.transcript)
    assert (
        format_slu_target(SluTarget("general_joke", (), "tell me a joke"))
        == "general_joke SEP tell me a joke"
    )


_WORD = st.from_regex(r"[a-z0-9@.'&_-]{1,8}", fullmatch=True)
_PHRASE = st.lists(_WORD, min_size=1, max_size=5).map(" ".join)


@NO_DEADLINE
@given(
    scenario=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    action=st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
    entities=st.lists(st.builds(Entity, _TYPE, _PHRASE), max_size=4),
    transcript=_PHRASE,
)
def test_slu_targets_round_trip(scenario: str, action: str, entities: list[Entity], transcript: str) -> None:
    target = SluTarget(f"{scenario}_{action}", tuple(entities), transcript)
    parsed = parse_slu_target(format_slu_target(target))
    assert parsed == SluTarget(target.intent, tuple(sorted(entities, key=lambda e: e.type)), transcript)


@pytest.mark.parametrize(
    "text",
    [
        "alarm_set",
        "alarm_set SEP time five am SEP wake",
        "alarm set SEP wake",
        "alarm_set SEP time FILL SEP wake",
        "alarm_set SEP FILL five SEP wake",
        "alarm_set SEP time FILL a FILL b SEP wake",
    ],
)
def test_malformed_slu_targets_are_rejected(text: str) -> None:
    with pytest.raises(SluTargetError):
        parse_slu_target(text)


@NO_DEADLINE
@given(text=st.lists(st.sampled_from(["SEP", "FILL", "a", "b_c", " "]), max_size=12).map(" ".join))
def test_slu_target_parser_accepts_or_raises_slu_target_error(text: str) -> None:
    try:
        target = parse_slu_target(text)
    except SluTargetError:
        return
    assert "SEP" not in target.intent.split() and all("FILL" not in e.filler.split() for e in target.entities)


def test_format_slu_target_refuses_parts_that_would_not_parse_back() -> None:
    for target in (
        SluTarget("alarm set", (), "x"),
        SluTarget("alarm_set", (Entity("time", "SEP"),), "x"),
        SluTarget("alarm_set", (Entity("time", " five"),), "x"),
        SluTarget("alarm_set", (), ""),
    ):
        with pytest.raises(ValueError):
            format_slu_target(target)


def test_normalize_transcript_follows_espnet_slurp_entity() -> None:
    assert (
        normalize_transcript("Tweet  @comcast, #nothappy i. b. m.")
        == "tweet at comcast hashtag nothappy i b m"
    )


# ---------------------------------------------------------------------------------------------
# Records as released, quirks included


def _record(
    slurp_id: int,
    annotation: str,
    scenario: str,
    action: str,
    tokens: list[str],
    spans: list[tuple[str, list[int]]],
    files: list[str],
    sentence: str | None = None,
    intent: str | None = None,
) -> dict[str, Any]:
    """A jsonl record with the released files' fields."""
    return {
        "slurp_id": slurp_id,
        "sentence": sentence if sentence is not None else parse_annotation(annotation).text.lower(),
        "sentence_annotation": annotation,
        "intent": intent if intent is not None else f"{scenario}_{action}",
        "action": action,
        "tokens": [{"surface": t, "id": i, "lemma": t, "pos": "NN"} for i, t in enumerate(tokens)],
        "scenario": scenario,
        "recordings": [{"file": f, "wer": 0.0, "ent_wer": None, "status": "correct"} for f in files],
        "entities": [{"span": span, "type": t} for t, span in spans],
    }


QUIRKY_RECORDS = {
    "devel": [
        # upper case in the annotation only
        _record(
            1,
            "wake me up on [date : Friday] at [time : seven]",
            "alarm",
            "set",
            "wake me up on Friday at seven".split(),  # tokens as annotated
            [("date", [4]), ("time", [6])],
            ["audio-1490000001-headset.flac", "audio-1490000001.flac"],
        ),
        # '@' and '.' in a filler; spaCy tokens
        _record(
            2,
            "send an email to [email_address : juan.pedro@gmail dot com]",
            "email",
            "sendemail",
            ["send", "an", "email", "to", "juan.pedro@gmail", "dot", "com"],
            [("email_address", [4, 5, 6])],
            ["audio--1504194842.flac", "audio--1504194842-headset.flac"],
        ),
        # `intent` differs from scenario_action; annotation text differs from the sentence
        _record(
            3,
            "weather in [place_name : hwood] [date : tomorrow]",
            "weather",
            "query",
            ["weather", "in", "hollywood", "tomorrow"],
            [("place_name", [2]), ("date", [3])],
            ["audio-1490000003.flac"],
            sentence="weather in hollywood tomorrow",
            intent="query",
        ),
    ],
    "test": [
        # the scorer's gold filler is token surfaces: "domino 's"
        _record(
            4,
            "order a pizza from [business_name : domino's]",
            "takeaway",
            "order",
            ["order", "a", "pizza", "from", "domino", "'s"],
            [("business_name", [4, 5])],
            ["audio-1490000004-headset.flac"],
        ),
        _record(
            5,
            "how is [business_name : i. b. m.] doing",
            "qa",
            "stock",
            ["how", "is", "i.", "b.", "m.", "doing"],
            [("business_name", [2, 3, 4])],
            ["audio-1490000005.flac"],
        ),
    ],
    "train": [
        _record(
            6, "tell me a joke", "general", "joke", "tell me a joke".split(), [], ["audio-1490000006.flac"]
        ),
        _record(
            7,
            "play [artist_name : Adele]",
            "play",
            "music",
            ["play", "adele"],
            [("artist_name", [1])],
            ["audio-1490000007-headset.flac"],
        ),
    ],
}


def _write_flac(path: Path, seconds: float = 0.5, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(
        path, (3000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16), rate, format="FLAC", subtype="PCM_16"
    )


def _write_slurp(root: Path, splits: dict[str, list[dict[str, Any]]]) -> Path:
    """A SLURP folder holding `splits`, metadata.json, and a short tone per recording."""
    dataset, audio = root / "dataset" / "slurp", root / "audio" / "slurp_real"
    dataset.mkdir(parents=True)
    audio.mkdir(parents=True)
    metadata = {}
    for split, records in splits.items():
        (dataset / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        for number, record in enumerate(records):
            files = [r["file"] for r in record["recordings"]]
            speaker = f"{'FM'[number % 2]}O-{100 + number}{split[0]}"
            metadata[str(record["slurp_id"])] = {"recordings": {f: {"usrid": speaker} for f in files}}
            for file in files:
                _write_flac(audio / file)
    (dataset / "metadata.json").write_text(json.dumps(metadata))
    return root


@pytest.fixture
def quirky(tmp_path: Path) -> Path:
    return _write_slurp(tmp_path / "slurp", QUIRKY_RECORDS)


def test_released_quirks_are_accepted_and_targets_follow_the_scorer(
    quirky: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="espnet_prune.data.slurp"):
        summary = prepare_slurp(quirky, tmp_path / "data")
    assert "devel: 1 annotations differ from their sentence" in caplog.text  # "hwood", kept
    assert summary == type(summary)({"train": 2, "devel": 5, "test": 2}, 0)
    devel = {
        name: read_table(tmp_path / "data" / "devel" / name)
        for name in ["text", "intent", "entities", "recording", "wav.scp"]
    }
    by_file = {file: utt for utt, file in devel["recording"].items()}
    utt = by_file["audio-1490000001.flac"]
    assert (
        devel["text"][utt]
        == "alarm_set SEP date FILL friday SEP time FILL seven SEP wake me up on friday at seven"
    )
    utt = by_file["audio--1504194842.flac"]
    assert devel["wav.scp"][utt].endswith("/audio/slurp_real/audio--1504194842.flac")
    assert json.loads(devel["entities"][utt]) == [
        {"type": "email_address", "filler": "juan.pedro@gmail dot com"}
    ]
    assert parse_slu_target(devel["text"][utt]).entities == (
        Entity("email_address", "juan.pedro@gmail dot com"),
    )
    utt = by_file["audio-1490000003.flac"]
    assert devel["intent"][utt] == "weather_query"  # not the record's "query"
    assert devel["text"][utt].startswith(
        "weather_query SEP date FILL tomorrow SEP place_name FILL hollywood SEP"
    )
    test_text = read_table(tmp_path / "data" / "test" / "text")
    assert sorted(test_text.values()) == [
        "qa_stock SEP business_name FILL i. b. m. SEP how is i b m doing",
        "takeaway_order SEP business_name FILL domino 's SEP order a pizza from domino's",
    ]
    for split in ("train", "devel", "test"):
        validate_data_dir(tmp_path / "data" / split, TARGET_TABLES)


def test_check_record_uses_scenario_action_and_token_fillers() -> None:
    record = parse_record(json.dumps(QUIRKY_RECORDS["test"][0]))
    target, annotation = check_record(record)
    assert record.label == "takeaway_order" and target.intent == "takeaway_order"
    assert target.entities == (Entity("business_name", "domino 's"),)
    assert annotation.fillers() == [Entity("business_name", "domino's")]
    assert parse_record(record.to_json()) == record


# Each breaks one record: returns (words the error must say, the jsonl line it must name).
def _truncate_line(records: list[Any]) -> tuple[str, int]:
    records[1] = json.dumps(records[1])[:40]
    return "malformed JSON", 2


def _drop_field(records: list[Any]) -> tuple[str, int]:
    del records[0]["scenario"]
    return "field 'scenario' is missing", 1


def _unclosed_bracket(records: list[Any]) -> tuple[str, int]:
    records[2]["sentence_annotation"] = "weather in [place_name : hwood [date : tomorrow]"
    return "not closed before the next", 3


def _brackets_disagree_with_entities(records: list[Any]) -> tuple[str, int]:
    records[0]["sentence_annotation"] = "wake me up on friday at [time : seven]"
    return "do not match the entities", 1


def _span_over_missing_token(records: list[Any]) -> tuple[str, int]:
    records[1]["entities"][0]["span"] = [4, 5, 6, 7]
    return "missing tokens", 2


def _wrong_type(records: list[Any]) -> tuple[str, int]:
    records[2]["slurp_id"] = "3"
    return "field 'slurp_id' has the wrong type", 3


def _path_as_file_name(records: list[Any]) -> tuple[str, int]:
    records[2]["recordings"][0]["file"] = "../../etc/passwd.flac"
    return "not a plain .flac file name", 3


RECORD_BREAKAGES = [
    _truncate_line,
    _drop_field,
    _unclosed_bracket,
    _brackets_disagree_with_entities,
    _span_over_missing_token,
    _wrong_type,
    _path_as_file_name,
]


@pytest.mark.parametrize("breakage", RECORD_BREAKAGES, ids=lambda f: f.__name__.strip("_"))
def test_bad_records_name_file_and_line_or_are_skipped(quirky: Path, tmp_path: Path, breakage: Any) -> None:
    jsonl = quirky / "dataset" / "slurp" / "devel.jsonl"
    records: list[Any] = [json.loads(line) for line in jsonl.read_text().splitlines()]
    words, line = breakage(records)
    jsonl.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    with pytest.raises(DataPrepError, match=words) as caught:
        prepare_slurp(quirky, tmp_path / "data", ["devel"])
    assert (caught.value.path, caught.value.line) == (str(jsonl), line)
    assert not (tmp_path / "data" / "devel").exists()
    summary = prepare_slurp(quirky, tmp_path / "data", ["devel"], skip_bad=True)
    assert summary.skipped == 1
    assert summary.utterances["devel"] < 5
    validate_data_dir(tmp_path / "data" / "devel", TARGET_TABLES)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda f: f.unlink(), "audio file is missing"),
        (lambda f: f.write_bytes(b""), "unreadable audio"),
        (lambda f: _write_flac(f, rate=8000), "sample rate is 8000 Hz"),
    ],
    ids=["missing", "empty", "8kHz"],
)
def test_bad_audio_names_recording_and_jsonl_line(
    quirky: Path, tmp_path: Path, damage: Any, words: str
) -> None:
    flac = quirky / "audio" / "slurp_real" / "audio--1504194842-headset.flac"
    damage(flac)
    with pytest.raises(DataPrepError, match=words) as caught:
        prepare_slurp(quirky, tmp_path / "data", ["devel"])
    assert (caught.value.path, caught.value.line) == (str(quirky / "dataset/slurp/devel.jsonl"), 2)
    assert str(flac) in str(caught.value)
    assert prepare_slurp(quirky, tmp_path / "data", ["devel"], skip_bad=True).utterances == {"devel": 4}


def test_recording_without_speaker_and_malformed_metadata(quirky: Path, tmp_path: Path) -> None:
    metadata_path = quirky / "dataset" / "slurp" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    del metadata["4"]
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(DataPrepError, match=r"no speaker in metadata\.json") as caught:
        prepare_slurp(quirky, tmp_path / "data", ["test"])
    assert caught.value.line == 1
    metadata_path.write_text('{"1": {"recordings": \n')
    with pytest.raises(DataPrepError, match="malformed JSON") as caught:
        prepare_slurp(quirky, tmp_path / "data", ["test"])
    assert (caught.value.path, caught.value.line) == (str(metadata_path), 2)


def test_skip_bad_counts_every_bad_input_across_splits(quirky: Path, tmp_path: Path) -> None:
    (quirky / "audio" / "slurp_real" / "audio-1490000007-headset.flac").unlink()
    with open(quirky / "dataset" / "slurp" / "test.jsonl", "a") as jsonl:
        jsonl.write("{not json\n\n")  # a blank line is not an error
    summary = prepare_slurp(quirky, tmp_path / "data", skip_bad=True)
    assert summary.skipped == 2
    assert summary.utterances == {"train": 1, "devel": 5, "test": 2}


# ---------------------------------------------------------------------------------------------
# The synthetic SLURP read back


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slurp") / "slurp"
    synthesize_corpus(SynthRequest("slurp", 5, "tiny"), root, workers=2, progress=False)
    return root


@pytest.fixture(scope="module")
def synthetic_data(synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("slurp_data")
    assert prep_slurp.main(["--slurp_root", str(synthetic), "--out", str(data)]) == 0
    return data


def _jsonl_records(root: Path, split: str) -> list[Any]:
    return [
        parse_record(line)
        for line in (root / "dataset" / "slurp" / f"{split}.jsonl").read_text().splitlines()
    ]


def test_synthetic_slurp_reads_back_with_consistent_targets(synthetic: Path, synthetic_data: Path) -> None:
    speakers_of_split = {}
    for split in ("train", "devel", "test"):
        data = synthetic_data / split
        validate_data_dir(data, TARGET_TABLES)
        tables = {name: read_table(data / name) for name in ["text", "utt2spk", *TARGET_TABLES]}
        records = {
            r.slurp_id: r
            for name in (split, "train_synthetic")
            if split == "train" or name == split
            for r in _jsonl_records(synthetic, name)
        }
        expected = sum(len(r.recordings) for r in records.values())
        assert len(tables["text"]) == expected
        for utt, text in tables["text"].items():
            record = records[int(tables["slurp_id"][utt])]
            assert tables["recording"][utt] in {r.file for r in record.recordings}
            target = parse_slu_target(text)
            assert target.intent == tables["intent"][utt] == f"{record.scenario}_{record.action}"
            assert target.transcript == tables["transcript"][utt]
            gold = [Entity(**e) for e in json.loads(tables["entities"][utt])]
            assert gold == record.gold_entities()
            assert target.entities == tuple(sorted(gold, key=lambda e: e.type))
        speakers_of_split[split] = set(tables["utt2spk"].values())
    assert SYNTHETIC_SPEAKER in speakers_of_split["train"]
    assert not speakers_of_split["train"] & speakers_of_split["devel"]
    assert not speakers_of_split["train"] & speakers_of_split["test"]
    assert not speakers_of_split["devel"] & speakers_of_split["test"]


def test_synthetic_slurp_has_the_released_quirks(synthetic: Path, synthetic_data: Path) -> None:
    for split in ("train", "devel", "test"):
        records = _jsonl_records(synthetic, split)
        assert any(r.sentence_annotation != r.sentence_annotation.lower() for r in records)
        assert any(r.intent != r.label for r in records)
        assert any(f.file.startswith("audio--") for r in records for f in r.recordings)
        intents = read_table(synthetic_data / split / "intent").values()
        assert all(intent.count("_") >= 1 and intent == intent.lower() for intent in intents)


def test_train_synthetic_can_be_left_out(synthetic: Path, tmp_path: Path) -> None:
    summary = prepare_slurp(synthetic, tmp_path, ["train"], include_synthetic=False)
    speakers = set(read_table(tmp_path / "train" / "utt2spk").values())
    assert SYNTHETIC_SPEAKER not in speakers
    assert summary.utterances["train"] == sum(len(r.recordings) for r in _jsonl_records(synthetic, "train"))


def test_missing_dataset_folder_is_a_clear_error(tmp_path: Path) -> None:
    assert prep_slurp.main(["--slurp_root", str(tmp_path), "--out", str(tmp_path / "data")]) == 1
    with pytest.raises(DataPrepError, match="no dataset/slurp/ folder"):
        prepare_slurp(tmp_path, tmp_path / "data")


def test_prep_output_replaces_an_older_one(synthetic: Path, synthetic_data: Path, tmp_path: Path) -> None:
    shutil.copytree(synthetic_data / "devel", tmp_path / "devel")
    (tmp_path / "devel" / "leftover").write_text("x 1\n")
    prepare_slurp(synthetic, tmp_path, ["devel"])
    assert not (tmp_path / "devel" / "leftover").exists()
    assert read_table(tmp_path / "devel" / "text") == read_table(synthetic_data / "devel" / "text")
