"""SLU significance: per-recording records that add up to the test set's scores, McNemar, bootstrap."""

import json
import random

import pytest

from espnet_prune.data.slurp import Entity
from espnet_prune.slu.metrics import SluPrediction, evaluate, per_recording, precision_recall_f1
from espnet_prune.slu.significance import bootstrap_f1_difference, mcnemar, paired_items, read_per_recording

INTENTS = ["alarm_set", "weather_query", "play_music", "calendar_remove"]
FILLERS = ["seven am", "london", "jazz", "monday", "the meeting"]


def _gold(n: int = 60) -> dict[str, SluPrediction]:
    rng = random.Random(0)
    gold = {}
    for i in range(n):
        scenario, action = rng.choice(INTENTS).split("_", 1)
        gold[f"audio-{i}.flac"] = SluPrediction(scenario, action, (Entity("place_name", rng.choice(FILLERS)),))
    return gold


def _predict(gold: dict[str, SluPrediction], error: float, seed: int) -> dict[str, SluPrediction]:
    """Each recording's intent and its entity's filler wrong with probability `error`."""
    rng = random.Random(seed)
    predicted = {}
    for file, truth in gold.items():
        intent = rng.choice([x for x in INTENTS if x != truth.intent]) if rng.random() < error else truth.intent
        filler = rng.choice(FILLERS) if rng.random() < error else truth.entities[0].filler
        scenario, action = intent.split("_", 1)
        predicted[file] = SluPrediction(scenario, action, (Entity("place_name", filler),))
    return predicted


def test_records_add_up_to_the_test_sets_scores():
    gold = _gold()
    predicted = _predict(gold, 0.3, seed=0)
    del predicted["audio-3.flac"]  # missing predictions are left out, as evaluate leaves them out
    records = per_recording(gold, predicted)
    result = evaluate(gold, predicted)
    assert len(records) == result.n_scored == 59
    assert sum(r["intent_correct"] for r in records) / len(records) == pytest.approx(result.accuracy(result.intent))
    tp, fp, fn = (sum(r[k] for r in records) for k in ("slu_tp", "slu_fp", "slu_fn"))
    assert precision_recall_f1(tp, fp, fn)[2] == pytest.approx(result.slu.overall("micro").f1)


def _item(a_correct: bool, b_correct: bool) -> tuple[dict, dict]:
    return {"intent_correct": a_correct}, {"intent_correct": b_correct}


def test_mcnemar_exact_p():
    items = [_item(True, False)] * 10 + [_item(False, True)] * 2 + [_item(True, True)] * 30
    assert mcnemar(items) == pytest.approx(2 * (1 + 12 + 66) / 2**12)  # 2 P(X <= 2), X ~ B(12, 1/2)
    assert mcnemar([_item(True, True), _item(False, False)]) == 1.0


def test_bootstrap_interval_of_the_f1_difference(tmp_path):
    paths = []
    gold = _gold()
    for name, error in (("a", 0.05), ("b", 0.6)):
        predicted = _predict(gold, error, seed=1)
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in per_recording(gold, predicted)))
        paths.append(path)
    items = paired_items([(paths[0], paths[1])])
    diff, low, high = bootstrap_f1_difference(items, resamples=300)
    assert 0 < low <= diff <= high  # A is clearly better: the interval excludes 0
    same = paired_items([(paths[0], paths[0])])
    assert bootstrap_f1_difference(same, resamples=50) == (0.0, 0.0, 0.0)


def test_malformed_records_name_the_line(tmp_path):
    path = tmp_path / "per_recording.jsonl"
    path.write_text('{"file": "a.flac", "intent_correct": true}\n{"intent_correct": true}\n')
    with pytest.raises(ValueError, match=r"per_recording.jsonl:2"):
        read_per_recording(path)
