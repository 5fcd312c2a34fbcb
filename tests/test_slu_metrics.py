"""SLURP's metrics: hand-worked examples, properties, hypothesis parsing, bad input, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espnet_prune.asr.score import ScoringInputError
from espnet_prune.bin import score_slurp
from espnet_prune.data.slurp import Entity, SluTarget, format_slu_target
from espnet_prune.slu.metrics import (
    NO_INTENT,
    SluPrediction,
    char_distance,
    evaluate,
    parse_slu_hypothesis,
    read_gold_jsonl,
    read_predictions_jsonl,
    word_distance,
)

NO_DEADLINE = settings(deadline=None, max_examples=60)


def example(intent: str, *entities: tuple[str, str]) -> SluPrediction:
    scenario, action = intent.split("_", 1)
    return SluPrediction(scenario, action, tuple(Entity(t, f) for t, f in entities))


# ---------------------------------------------------------------------------------------------
# Hand-worked examples


def test_slu_f1_gives_partial_credit_by_word_and_char_distance() -> None:
    # Gold: date "next friday", person "john smith". Predicted: date "friday", person "john smyth",
    # place_name "paris" (no such gold entity).
    #
    # Exact span F1: no prediction equals a gold entity -> TP 0, FP 3, FN 2, F1 0.
    # Word level (WER of the filler, gold as reference):
    #   date   "next friday" -> "friday":   1 deletion / 2 words = 0.5  -> TP 1, FP 0.5, FN 0.5
    #   person "john smith" -> "john smyth": 1 substitution / 2 = 0.5   -> TP 1, FP 0.5, FN 0.5
    #   place_name: no gold of that type                                -> FP 1
    #   word totals: TP 2, FP 2, FN 1.
    # Char level (Levenshtein / longer length):
    #   date   "next friday" (11) -> "friday" (6): 5 deletions -> 5/11  -> TP 1, FP 5/11, FN 5/11
    #   person "john smith" -> "john smyth": 1 substitution / 10 = 1/10 -> TP 1, FP 1/10, FN 1/10
    #   place_name                                                      -> FP 1
    #   char totals: TP 2, FP 1 + 61/110, FN 61/110.
    # SLU-F1 adds the two label by label: TP 4, FP 3 + 61/110, FN 1 + 61/110, and
    # F1 = 2 TP / (2 TP + FP + FN) = 8 / (8 + 4 + 122/110) = 440/721 = 0.6103 (not the mean of the
    # word F1 0.6154 and the char F1 0.6045).
    # Per type, date: TP 2, FP = FN = 0.5 + 5/11 = 21/22 -> P = R = F1 = 2 / (2 + 21/22) = 44/65.
    gold = {"a.flac": example("calendar_query", ("date", "next friday"), ("person", "john smith"))}
    predicted = {
        "a.flac": example(
            "calendar_query", ("date", "friday"), ("person", "john smyth"), ("place_name", "paris")
        )
    }
    result = evaluate(gold, predicted)
    assert result.span.overall().f1 == 0.0
    word, char, slu = result.word.overall(), result.char.overall(), result.slu.overall()
    assert (word.tp, word.fp, word.fn) == (2, 2, 1)
    assert char.tp == 2 and math.isclose(char.fp, 1 + 61 / 110) and math.isclose(char.fn, 61 / 110)
    assert math.isclose(slu.f1, 440 / 721)
    assert math.isclose(result.slu.score("date").f1, 44 / 65)
    assert result.slu.score("place_name").precision == 0.0


def test_scenario_action_intent_accuracy() -> None:
    # 4 recordings: both right; scenario right, action wrong; scenario wrong, action right; a
    # prediction without intent. Scenario 2/4, action 2/4, intent 1/4 (micro F1 = accuracy).
    gold = {f: example("alarm_set") for f in "abcd"}
    predicted = {
        "a": example("alarm_set"),
        "b": example("alarm_query"),
        "c": example("iot_set"),
        "d": SluPrediction(None, None, ()),
    }
    result = evaluate(gold, predicted)
    assert (
        result.accuracy(result.scenario),
        result.accuracy(result.action),
        result.accuracy(result.intent),
    ) == (0.5, 0.5, 0.25)
    assert result.intent.overall().f1 == 0.25
    assert result.no_intent == ["d"]
    assert result.intent.fp[NO_INTENT] == 1 and result.intent.fn["alarm_set"] == 3


def test_distances() -> None:
    assert word_distance("new york", "new york city") == 0.5
    assert word_distance("york", "new york city") == 2.0  # WER exceeds 1 for longer predictions
    assert char_distance("abc", "abd") == pytest.approx(1 / 3)
    assert char_distance("", "") == 0.0


# ---------------------------------------------------------------------------------------------
# Properties

TYPES = st.sampled_from(["date", "time", "place_name"])
FILLER_WORDS = st.sampled_from(["five", "am", "new", "york", "fri"])
FILLERS = st.lists(FILLER_WORDS, min_size=1, max_size=3).map(" ".join)
ENTITIES = st.lists(st.builds(Entity, TYPES, FILLERS), max_size=4).map(tuple)
INTENT_PARTS = st.sampled_from(["alarm", "iot", "weather"]), st.sampled_from(["set", "query"])
GOLD = st.dictionaries(
    st.text("abc", min_size=1, max_size=3),
    st.builds(SluPrediction, *INTENT_PARTS, ENTITIES),
    min_size=1,
    max_size=5,
)


@NO_DEADLINE
@given(gold=GOLD)
def test_identical_predictions_score_one(gold: dict[str, SluPrediction]) -> None:
    result = evaluate(gold, dict(gold))
    assert (
        result.accuracy(result.scenario)
        == result.accuracy(result.action)
        == result.accuracy(result.intent)
        == 1.0
    )
    has_entities = any(p.entities for p in gold.values())
    # SLURP's compute_metrics gives 0 (not 1) when there is nothing to count.
    for tally in (result.span, result.word, result.char, result.slu):
        assert tally.overall().f1 == (1.0 if has_entities else 0.0)


def one_per_type(entities: tuple[Entity, ...], word: int) -> tuple[Entity, ...]:
    """The first entity of each type, its filler cut to one word (`word`: 0 first, -1 last)."""
    firsts = {}
    for entity in entities:
        firsts.setdefault(entity.type, Entity(entity.type, entity.filler.split()[word]))
    return tuple(firsts.values())


@NO_DEADLINE
@given(gold=GOLD, predicted_entities=st.lists(ENTITIES, min_size=5, max_size=5))
def test_slu_f1_lies_between_span_f1_and_one_with_one_word_fillers_one_per_type(
    gold: dict[str, SluPrediction], predicted_entities: list[tuple[Entity, ...]]
) -> None:
    # With at most one entity per type on each side, every wrong exact match becomes a pair with
    # distance d <= 1 (one-word fillers keep the WER <= 1): TP rises by 1 while FP + FN falls by
    # 2 - 2d, so F1 cannot fall. (In general it can; see the two tests below.)
    gold = {f: SluPrediction(p.scenario, p.action, one_per_type(p.entities, 0)) for f, p in gold.items()}
    predicted = {
        f: SluPrediction(p.scenario, p.action, one_per_type(entities, -1))
        for (f, p), entities in zip(gold.items(), predicted_entities, strict=False)
    }
    result = evaluate(gold, predicted)
    span, slu = result.span.overall().f1, result.slu.overall().f1
    assert span - 1e-12 <= slu <= 1.0


def test_greedy_matching_in_prediction_order_can_pull_slu_f1_below_span_f1() -> None:
    # SLURP matches predictions in order: "five" takes the only date, "am" is then left over.
    # Exact: TP 1 ("am"), FP 1 -> F1 2/3. Word: TP 1, FP 1 + 1, FN 1 -> F1 2/5; char: "am" vs
    # "five" 4/4 -> the same; SLU-F1 0.4.
    gold = {"a": example("alarm_set", ("date", "am"))}
    predicted = {"a": example("alarm_set", ("date", "five"), ("date", "am"))}
    result = evaluate(gold, predicted)
    assert math.isclose(result.span.overall().f1, 2 / 3)
    assert math.isclose(result.slu.overall().f1, 0.4)


TARGETS = st.builds(
    SluTarget,
    st.sampled_from(["alarm_set", "iot_hue_lightoff", "weather_query"]),
    st.lists(st.builds(Entity, TYPES, FILLERS), max_size=3).map(tuple),
    st.lists(FILLER_WORDS, min_size=1, max_size=5).map(" ".join),
)


@NO_DEADLINE
@given(target=TARGETS)
def test_hypothesis_parsing_inverts_the_target_format(target: SluTarget) -> None:
    parsed = parse_slu_hypothesis(format_slu_target(target))
    assert parsed.intent == target.intent
    assert sorted(parsed.entities, key=lambda e: e.type) == sorted(target.entities, key=lambda e: e.type)
    assert (parsed.transcript, parsed.dropped_entities) == (target.transcript, 0)


@NO_DEADLINE
@given(words=st.lists(st.sampled_from(["SEP", "FILL", "alarm_set", "date", "five", "am", "_"]), max_size=12))
def test_hypothesis_parsing_never_raises(words: list[str]) -> None:
    parsed = parse_slu_hypothesis(" ".join(words))
    prediction = parsed.to_prediction()
    assert prediction.has_intent == (parsed.intent is not None)
    assert all(e.type and e.filler and "FILL" not in e.filler.split() for e in parsed.entities)


@pytest.mark.parametrize(
    ("text", "intent", "entities", "dropped", "transcript"),
    [
        (
            "alarm_set SEP time FILL five am SEP wake me at five am",
            "alarm_set",
            [("time", "five am")],
            0,
            "wake me at five am",
        ),
        (
            "alarm_set SEP time five am SEP date FILL monday SEP wake me",
            "alarm_set",
            [("date", "monday")],
            1,
            "wake me",
        ),
        ("alarm_set SEP FILL five SEP time FILL FILL x SEP SEP wake", "alarm_set", [], 3, "wake"),
        ("wake me up", None, [], 0, "wake me up"),  # no SEP: all transcript, no intent
        ("SEP time FILL five SEP wake", None, [("time", "five")], 0, "wake"),  # empty intent
        ("alarm set SEP wake", None, [], 0, "wake"),  # two words
        ("alarm SEP wake", None, [], 0, "wake"),  # no <scenario>_<action>
        ("", None, [], 0, ""),  # empty hypothesis
    ],
)
def test_malformed_hypotheses_are_taken_apart_without_crashing(
    text: str, intent: str | None, entities: list[tuple[str, str]], dropped: int, transcript: str
) -> None:
    parsed = parse_slu_hypothesis(text)
    assert parsed.intent == intent
    assert list(parsed.entities) == [Entity(t, f) for t, f in entities]
    assert (parsed.dropped_entities, parsed.transcript) == (dropped, transcript)


# ---------------------------------------------------------------------------------------------
# Missing, extra and odd predictions; unseen intents


def test_missing_predictions_are_left_out_and_listed_as_slurp_does(caplog) -> None:
    gold = {"a": example("alarm_set", ("time", "five")), "b": example("iot_set")}
    predicted = {"a": example("alarm_set", ("time", "five")), "zzz": example("iot_set")}
    result = evaluate(gold, predicted)
    assert (result.n_gold, result.n_scored, result.missing, result.not_in_gold) == (2, 1, ["b"], ["zzz"])
    assert result.accuracy(result.intent) == 1.0 and result.slu.overall().f1 == 1.0
    assert "1 of 2 gold recordings have no prediction" in caplog.text


def test_intents_unseen_in_training_are_reported() -> None:
    gold = {"a": example("alarm_set"), "b": example("iot_cleaning"), "c": example("iot_cleaning")}
    predicted = {"a": example("alarm_set"), "b": example("iot_cleaning"), "c": example("music_play")}
    result = evaluate(gold, predicted, train_intents={"alarm_set"})
    assert dict(result.unseen_gold_intents) == {"iot_cleaning": 2}
    assert dict(result.unseen_predicted_intents) == {"iot_cleaning": 1, "music_play": 1}


# ---------------------------------------------------------------------------------------------
# Input files


def test_predictions_jsonl_reading_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "predictions.jsonl"
    good.write_text(
        json.dumps(
            {
                "file": "a.flac",
                "scenario": "alarm",
                "action": "set",
                "entities": [{"type": "time", "filler": "five", "span": [3]}, {"type": "date"}],
            }
        )
        + '\n{"file": "b.flac", "entities": []}\n',
        encoding="utf-8",
    )
    predictions = read_predictions_jsonl(good)
    assert predictions["a.flac"] == SluPrediction(
        "alarm", "set", (Entity("time", "five"),), dropped_entities=1
    )
    assert not predictions["b.flac"].has_intent
    for name, content, message in (
        ("broken.jsonl", b'{"file": "a.flac"}\n{"file": \n', r"broken.jsonl:2: malformed JSON"),
        ("nofile.jsonl", b'{"scenario": "alarm"}\n', r'nofile.jsonl:1: not an object with a "file"'),
        (
            "latin1.jsonl",
            b'{"file": "caf\xe9.flac"}\n',
            r"latin1.jsonl:1: not UTF-8 \(byte 0xe9 at column 14\)",
        ),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ScoringInputError, match=message):
            read_predictions_jsonl(path)


SLURP_RECORD = {
    "slurp_id": 7,
    "sentence": "wake me up at five am",
    "sentence_annotation": "wake me up at [time : five am]",
    "intent": "alarm_set",
    "action": "set",
    "tokens": [{"surface": s, "id": i} for i, s in enumerate(["wake", "me", "up", "at", "Five", "am"])],
    "scenario": "alarm",
    "recordings": [{"file": "audio-1.flac"}, {"file": "audio-2.flac"}],
    "entities": [{"span": [4, 5], "type": "time"}],
}


def test_gold_from_slurp_jsonl_has_one_entry_per_recording_with_lower_cased_fillers(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(SLURP_RECORD) + "\n" + '{"slurp_id": "x"}\n', encoding="utf-8")
    with pytest.raises(ScoringInputError, match=r"test.jsonl:2: field 'slurp_id'"):
        read_gold_jsonl(path)
    path.write_text(json.dumps(SLURP_RECORD) + "\n", encoding="utf-8")
    gold = read_gold_jsonl(path)
    assert gold == {f: example("alarm_set", ("time", "five am")) for f in ("audio-1.flac", "audio-2.flac")}


# ---------------------------------------------------------------------------------------------
# Command line


def write_table(path: Path, rows: dict[str, str]) -> None:
    path.write_text("".join(f"{k} {v}\n" for k, v in sorted(rows.items())), encoding="utf-8")


@pytest.fixture
def gold_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data" / "test"
    data.mkdir(parents=True)
    write_table(data / "intent", {"s1-a": "alarm_set", "s1-b": "weather_query", "s2-c": "iot_cleaning"})
    write_table(
        data / "entities",
        {
            "s1-a": '[{"type": "time", "filler": "five am"}]',
            "s1-b": '[{"type": "date", "filler": "next friday"}]',
            "s2-c": "[]",
        },
    )
    write_table(data / "recording", {"s1-a": "audio-1.flac", "s1-b": "audio-2.flac", "s2-c": "audio-3.flac"})
    write_table(
        data / "transcript", {"s1-a": "wake me at five am", "s1-b": "weather next friday", "s2-c": "clean up"}
    )
    write_table(data / "utt2spk", {"s1-a": "s1", "s1-b": "s1", "s2-c": "s2"})
    return data


def test_cli_scores_espnet_hypotheses(gold_dir: Path, tmp_path: Path, capsys) -> None:
    hyp = tmp_path / "hyp"
    write_table(
        hyp,
        {
            "s1-a": "alarm_set SEP time FILL five am SEP wake me at five am",
            "s1-b": "weather_query SEP date FILL friday SEP weather friday",
            "s2-c": "SEP clean up",  # no intent
        },
    )
    train_intents = tmp_path / "train_intent"
    write_table(train_intents, {"x-1": "alarm_set", "x-2": "weather_query"})
    out = tmp_path / "score_slu"
    argv = [
        "--gold_dir",
        str(gold_dir),
        "--hyp",
        str(hyp),
        "--out",
        str(out),
        "--train_intents",
        str(train_intents),
    ]
    assert score_slurp.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["intent_accuracy"] == pytest.approx(2 / 3)
    assert metrics["no_intent"] == ["audio-3.flac"]
    assert metrics["unseen_gold_intents"] == {"iot_cleaning": 1}
    assert metrics["span_f1"]["labels"]["time"]["f1"] == 1.0
    # transcripts: 1 deletion ("next") in 10 reference words
    assert metrics["wer"]["n_err"] == 1 and metrics["wer"]["n_words"] == 10
    assert (out / "score_wer" / "result.txt").is_file()
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert json.loads(lines[2]) == {"file": "audio-3.flac", "scenario": "", "action": "", "entities": []}
    table = (out / "result.txt").read_text()
    assert table == capsys.readouterr().out
    assert "| SLU-F1" in table and "Predictions without intent (scored as '<none>'): 1" in table


def test_cli_scores_slurp_predictions_and_rejects_bad_input(tmp_path: Path) -> None:
    gold = tmp_path / "test.jsonl"
    gold.write_text(json.dumps(SLURP_RECORD) + "\n", encoding="utf-8")
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(
        json.dumps(
            {
                "file": "audio-1.flac",
                "scenario": "alarm",
                "action": "set",
                "entities": [{"type": "time", "filler": "five"}],
            }
        )
        + "\n"
    )
    out = tmp_path / "out"
    assert score_slurp.main(["--gold", str(gold), "--predictions", str(predictions), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["n_scored"], metrics["missing"]) == (1, ["audio-2.flac"])
    assert metrics["slu_f1"]["overall"]["tp"] == 2  # partial credit for "five" against "five am"
    predictions.write_bytes(b'{"file": \n')
    assert score_slurp.main(["--gold", str(gold), "--predictions", str(predictions), "--out", str(out)]) == 1
    assert not out.exists()  # the earlier report is gone, not left looking current
