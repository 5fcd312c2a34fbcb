"""SLURP's metrics, implemented from their definitions (SLURP's scripts/evaluation), and their inputs.

Every metric tallies true positives, false positives and false negatives per label; precision,
recall and F1 come from the tallies, summed over labels (micro average, the default of SLURP's
evaluate.py) or averaged label by label (macro).

    scenario / action / intent  a right label is a TP for it; a wrong one an FP for the predicted
                                label and an FN for the gold one. Micro F1 = accuracy.
    span F1 (exact)             each predicted entity in order is a TP if an equal (type and
                                filler) gold entity remains, which it then uses up, else an FP;
                                each unused gold entity is an FN.
    span distance F1, word      each predicted entity in order: if a gold entity of its type
      and char                  remains, take the one at the smallest distance d (the first on
                                ties): TP += 1, FP += d, FN += d, and use it up; else FP += 1.
                                Unused gold entities: FN += 1. Word distance: the filler's WER
                                with the gold filler as reference (above 1 when the prediction
                                is longer). Char distance: Levenshtein distance / the longer length.
    SLU-F1                      the word and the char tallies added label by label, then P/R/F1.

P, R and F1 follow evaluate.py where it divides by zero: all 0 (so a test set without entities
scores span F1 0, even for perfect predictions).

Gold recordings without a prediction are, as in evaluate.py, left out of every metric and only
warned about; here they are also counted and listed. Where this module departs from evaluate.py:
a prediction without scenario/action (evaluate.py: KeyError) counts as the wrong label `<none>`
and is reported; prediction entities are read as (type, filler) only, so extra keys do not break
exact matches (evaluate.py compares whole dicts), and entities lacking a string type or filler
are dropped and counted; a recording predicted twice keeps the last prediction, as evaluate.py
does, but with a warning. ESPnet's copy of evaluate.py joins " '" to "'" in gold fillers; SLURP's
does not, nor does this module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jiwer
from rapidfuzz.distance import Levenshtein

from espnet_prune.asr.score import ScoringInputError
from espnet_prune.data.datadir import DataDirError, read_table
from espnet_prune.data.slurp import SEP, Entity, SluTargetError, parse_record, parse_slu_target, split_segments

logger = logging.getLogger(__name__)

Average = Literal["micro", "macro"]
AVERAGES: tuple[Average, ...] = ("micro", "macro")
NO_INTENT = "<none>"  # the label of a prediction without scenario/action
_INTENT = re.compile(r"[^_\s]+_\S+")  # <scenario>_<action>; scenarios have no '_'


# ---------------------------------------------------------------------------------------------
# Predictions (and gold) in SLURP's prediction format


@dataclass(frozen=True)
class SluPrediction:
    """What is scored for one recording: scenario, action, entities (gold has the same shape).

    `scenario`/`action` None: the prediction had no intent. `dropped_entities` counts entity tags
    that were malformed and so not counted as entities.
    """

    scenario: str | None
    action: str | None
    entities: tuple[Entity, ...]
    dropped_entities: int = 0

    @property
    def has_intent(self) -> bool:
        return bool(self.scenario) and bool(self.action)

    @property
    def intent(self) -> str:
        """`<scenario>_<action>`, or NO_INTENT."""
        return f"{self.scenario}_{self.action}" if self.has_intent else NO_INTENT

    def to_json(self, file: str) -> dict[str, Any]:
        """This prediction as a line of SLURP's predictions jsonl."""
        return {
            "file": file,
            "scenario": self.scenario or "",
            "action": self.action or "",
            "entities": [{"type": e.type, "filler": e.filler} for e in self.entities],
        }


def split_intent(intent: str) -> tuple[str, str] | None:
    """(scenario, action) of `<scenario>_<action>`, or None if it is not one."""
    if not _INTENT.fullmatch(intent):
        return None
    scenario, _, action = intent.partition("_")
    return scenario, action


@dataclass(frozen=True)
class ParsedHypothesis:
    """An ESPnet slurp_entity hypothesis taken apart; malformed pieces are dropped and counted."""

    intent: str | None
    entities: tuple[Entity, ...]
    transcript: str
    dropped_entities: int

    def to_prediction(self) -> SluPrediction:
        scenario, action = split_intent(self.intent) if self.intent else (None, None)
        return SluPrediction(scenario, action, self.entities, self.dropped_entities)


def parse_slu_hypothesis(text: str) -> ParsedHypothesis:
    """Parse `<scenario>_<action> SEP <type> FILL <filler> SEP ... SEP <transcript>`; never raises.

    Unlike training targets, decoded hypotheses may be malformed. Without any SEP the text is all
    transcript and there is no intent; a first segment that is not one `<scenario>_<action>` word
    is no intent; an entity segment that `parse_slu_target` would reject (no FILL, two FILLs, no
    type or filler) counts as no entity and is counted in `dropped_entities`.
    """
    segments = split_segments(text)
    if len(segments) == 1:
        return ParsedHypothesis(None, (), " ".join(segments[0]), 0)
    intent_words, *entity_segments, transcript = segments
    intent = intent_words[0] if len(intent_words) == 1 and split_intent(intent_words[0]) else None
    entities = [_entity_or_none(words) for words in entity_segments]
    kept = tuple(e for e in entities if e is not None)
    return ParsedHypothesis(intent, kept, " ".join(transcript), len(entities) - len(kept))


def _entity_or_none(words: Sequence[str]) -> Entity | None:
    # Judged by the target parser itself, so that hypotheses and targets agree on what an entity
    # is: a one-entity target around the segment.
    try:
        (entity,) = parse_slu_target(" ".join(["x_y", SEP, *words, SEP])).entities
    except SluTargetError:
        return None
    return entity


# ---------------------------------------------------------------------------------------------
# Tallies and scores


@dataclass(frozen=True)
class Score:
    """Precision, recall, F1 and the tallies they come from."""

    precision: float
    recall: float
    f1: float
    tp: float
    fp: float
    fn: float

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def precision_recall_f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """P, R, F1; each 0 where its denominator is (as evaluate.py's compute_metrics)."""
    precision = 0.0 if tp == 0 and fp == 0 else tp / (tp + fp)
    recall = 0.0 if tp == 0 and fn == 0 else tp / (tp + fn)
    f1 = 0.0 if precision == 0 and recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


@dataclass
class Tally:
    """TP/FP/FN per label; fractional for the distance metrics."""

    tp: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    fp: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    fn: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def labels(self) -> list[str]:
        return sorted(set(self.tp) | set(self.fp) | set(self.fn))

    def score(self, label: str) -> Score:
        tp, fp, fn = self.tp.get(label, 0.0), self.fp.get(label, 0.0), self.fn.get(label, 0.0)
        return Score(*precision_recall_f1(tp, fp, fn), tp, fp, fn)

    def overall(self, average: Average = "micro") -> Score:
        """Micro: P/R/F1 of the summed tallies; macro: the mean of each label's P, R and F1."""
        tp, fp, fn = sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values())
        if average == "micro":
            return Score(*precision_recall_f1(tp, fp, fn), tp, fp, fn)
        scores = [self.score(label) for label in self.labels()]
        count = len(scores) or 1
        mean = [sum(getattr(s, name) for s in scores) / count for name in ("precision", "recall", "f1")]
        return Score(*mean, tp, fp, fn)

    def plus(self, other: Tally) -> Tally:
        """The two tallies added label by label (how SLU-F1 joins word and char)."""
        total = Tally()
        for part in (self, other):
            for mine, theirs in ((total.tp, part.tp), (total.fp, part.fp), (total.fn, part.fn)):
                for label, value in theirs.items():
                    mine[label] += value
        return total

    def to_json(self, average: Average) -> dict[str, Any]:
        return {
            "overall": self.overall(average).to_dict(),
            "labels": {label: self.score(label).to_dict() for label in self.labels()},
        }


def tally_label(tally: Tally, gold: str, predicted: str) -> None:
    """Scenario, action or intent of one recording."""
    if predicted == gold:
        tally.tp[gold] += 1
    else:
        tally.fp[predicted] += 1
        tally.fn[gold] += 1


def tally_exact_spans(tally: Tally, gold: Sequence[Entity], predicted: Sequence[Entity]) -> None:
    """Span F1: a predicted entity counts only if an equal gold entity is left to use up."""
    remaining = list(gold)
    for entity in predicted:
        if entity in remaining:
            tally.tp[entity.type] += 1
            remaining.remove(entity)
        else:
            tally.fp[entity.type] += 1
    for entity in remaining:
        tally.fn[entity.type] += 1


Distance = Callable[[str, str], float]


def word_distance(gold: str, predicted: str) -> float:
    """WER of the predicted filler against the gold one (word Levenshtein / gold words), by jiwer
    as in SLURP's evaluation."""
    if not gold.split():
        raise ValueError("a gold filler is empty")
    return jiwer.wer(gold, predicted)


def char_distance(gold: str, predicted: str) -> float:
    """Character Levenshtein distance divided by the longer filler's length, in [0, 1]."""
    return Levenshtein.normalized_distance(gold, predicted)


def tally_span_distance(
    tally: Tally, gold: Sequence[Entity], predicted: Sequence[Entity], distance: Distance
) -> None:
    """Span distance F1: partial credit for a predicted entity of the right type."""
    remaining = list(gold)
    for entity in predicted:
        candidates = [
            (distance(g.filler, entity.filler), index)
            for index, g in enumerate(remaining)
            if g.type == entity.type
        ]
        if not candidates:
            tally.fp[entity.type] += 1
            continue
        # min over (distance, index): the smallest distance, the first gold entity on ties.
        nearest, index = min(candidates)
        tally.tp[entity.type] += 1
        tally.fp[entity.type] += nearest
        tally.fn[entity.type] += nearest
        del remaining[index]
    for entity in remaining:
        tally.fn[entity.type] += 1


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class SlurpEvaluation:
    """All tallies of a test set, and what was missing or odd in the predictions."""

    scenario: Tally = field(default_factory=Tally)
    action: Tally = field(default_factory=Tally)
    intent: Tally = field(default_factory=Tally)
    span: Tally = field(default_factory=Tally)
    word: Tally = field(default_factory=Tally)
    char: Tally = field(default_factory=Tally)
    n_gold: int = 0
    n_scored: int = 0
    missing: list[str] = field(default_factory=list)
    not_in_gold: list[str] = field(default_factory=list)
    no_intent: list[str] = field(default_factory=list)
    dropped_entities: int = 0
    unseen_gold_intents: Counter[str] | None = None
    unseen_predicted_intents: Counter[str] | None = None

    @property
    def slu(self) -> Tally:
        """SLU-F1's tally: word and char distance tallies summed label by label."""
        return self.word.plus(self.char)

    def accuracy(self, tally: Tally) -> float:
        """Share of scored recordings whose label is right (0 when none was scored)."""
        return sum(tally.tp.values()) / self.n_scored if self.n_scored else 0.0


def evaluate(
    gold: Mapping[str, SluPrediction],
    predictions: Mapping[str, SluPrediction],
    train_intents: Collection[str] | None = None,
) -> SlurpEvaluation:
    """Score `predictions` against `gold`, both keyed by recording file.

    Gold recordings without prediction are left out (and listed), as in evaluate.py. With
    `train_intents`, gold and predicted intents never seen in training are counted.
    """
    result = SlurpEvaluation(n_gold=len(gold))
    result.not_in_gold = sorted(set(predictions) - set(gold))
    for file, truth in gold.items():
        prediction = predictions.get(file)
        if prediction is None:
            result.missing.append(file)
            continue
        result.n_scored += 1
        if not prediction.has_intent:
            result.no_intent.append(file)
        result.dropped_entities += prediction.dropped_entities
        tally_label(result.scenario, truth.scenario or NO_INTENT, prediction.scenario or NO_INTENT)
        tally_label(result.action, truth.action or NO_INTENT, prediction.action or NO_INTENT)
        tally_label(result.intent, truth.intent, prediction.intent)
        tally_exact_spans(result.span, truth.entities, prediction.entities)
        tally_span_distance(result.word, truth.entities, prediction.entities, word_distance)
        tally_span_distance(result.char, truth.entities, prediction.entities, char_distance)
    if train_intents is not None:
        known = set(train_intents)
        scored = [file for file in gold if file in predictions]
        result.unseen_gold_intents = Counter(gold[f].intent for f in scored if gold[f].intent not in known)
        result.unseen_predicted_intents = Counter(
            predictions[f].intent
            for f in scored
            if predictions[f].has_intent and predictions[f].intent not in known
        )
    _warn_about(result)
    return result


def per_recording(gold: Mapping[str, SluPrediction], predictions: Mapping[str, SluPrediction]) -> list[dict[str, Any]]:
    """Each scored recording's share of the scores, for significance tests over recordings.

    ``intent_correct``, and SLU-F1's micro tallies (word + char distance, summed over entity types):
    the test set's SLU-F1 is :func:`precision_recall_f1` of the summed ``slu_tp``, ``slu_fp``, ``slu_fn``.
    """
    records = []
    for file, truth in gold.items():
        prediction = predictions.get(file)
        if prediction is None:
            continue
        slu = Tally()  # word and char distance tallies in one, as SlurpEvaluation.slu sums them
        tally_span_distance(slu, truth.entities, prediction.entities, word_distance)
        tally_span_distance(slu, truth.entities, prediction.entities, char_distance)
        records.append(
            {
                "file": file,
                "intent_correct": prediction.intent == truth.intent,
                "slu_tp": sum(slu.tp.values()),
                "slu_fp": sum(slu.fp.values()),
                "slu_fn": sum(slu.fn.values()),
            }
        )
    return records


def _warn_about(result: SlurpEvaluation) -> None:
    if result.missing:
        logger.warning(
            "%d of %d gold recordings have no prediction: left out of the metrics (as SLURP's "
            "evaluate.py does), e.g. %s",
            len(result.missing),
            result.n_gold,
            ", ".join(result.missing[:3]),
        )
    if result.not_in_gold:
        logger.warning(
            "%d predictions are for recordings not in the gold data (ignored)", len(result.not_in_gold)
        )
    if result.no_intent:
        logger.warning("%d predictions have no intent (scored as wrong)", len(result.no_intent))
    if result.dropped_entities:
        logger.warning("%d malformed entity tags were counted as no entity", result.dropped_entities)
    if result.unseen_gold_intents:
        logger.warning(
            "%d scored recordings have gold intents unseen in training: %s",
            sum(result.unseen_gold_intents.values()),
            dict(result.unseen_gold_intents),
        )


def evaluation_json(result: SlurpEvaluation, name: str, average: Average = "micro") -> dict[str, Any]:
    """Every number of an evaluation, for metrics.json."""

    def counted(counter: Counter[str] | None) -> dict[str, int] | None:
        return None if counter is None else dict(sorted(counter.items()))

    return {
        "test_set": name,
        "average": average,
        "n_gold": result.n_gold,
        "n_scored": result.n_scored,
        "missing": result.missing,
        "not_in_gold": result.not_in_gold,
        "no_intent": result.no_intent,
        "dropped_entities": result.dropped_entities,
        "unseen_gold_intents": counted(result.unseen_gold_intents),
        "unseen_predicted_intents": counted(result.unseen_predicted_intents),
        "scenario_accuracy": result.accuracy(result.scenario),
        "action_accuracy": result.accuracy(result.action),
        "intent_accuracy": result.accuracy(result.intent),
        "scenario": result.scenario.to_json(average),
        "action": result.action.to_json(average),
        "intent": result.intent.to_json(average),
        "span_f1": result.span.to_json(average),
        "word_f1": result.word.to_json(average),
        "char_f1": result.char.to_json(average),
        "slu_f1": result.slu.to_json(average),
    }


# ---------------------------------------------------------------------------------------------
# The summary table


def _box(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An sclite-style box: first column left-aligned, the others right-aligned."""
    widths = [max(len(row[k]) for row in (header, *rows)) for k in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return (
            "| "
            + first.ljust(widths[0])
            + " | "
            + "  ".join(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))
            + " |"
        )

    inner = len(line(header)) - 2
    rule = "|" + "-" * (widths[0] + 2) + "+" + "-" * (inner - widths[0] - 3) + "|"
    out = [f",{'-' * inner}.", f"|{title.center(inner)}|", f"|{'-' * inner}|", line(header), rule]
    out += [line(row) for row in rows]
    out.append(f"`{'-' * inner}'")
    return "\n".join(out) + "\n"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _tallies(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def format_summary(
    result: SlurpEvaluation, name: str, average: Average = "micro", wer: float | None = None
) -> str:
    """The test set's summary: the metrics, the per-entity-type scores, and what was odd."""
    header = ["Metric", "Prec %", "Rec %", "F1 %", "TP", "FP", "FN"]
    rows = []
    for label, tally in (
        ("Scenario (acc.)", result.scenario),
        ("Action (acc.)", result.action),
        ("Intent (acc.)", result.intent),
        ("Span F1 (exact)", result.span),
        ("Span F1 (word)", result.word),
        ("Span F1 (char)", result.char),
        ("SLU-F1", result.slu),
    ):
        s = tally.overall(average)
        rows.append(
            [
                label,
                _pct(s.precision),
                _pct(s.recall),
                _pct(s.f1),
                _tallies(s.tp),
                _tallies(s.fp),
                _tallies(s.fn),
            ]
        )
    title = f"{name}: {result.n_scored} of {result.n_gold} recordings scored ({average} average)"
    out = [_box(title, header, rows)]
    type_header = [
        "Entity type",
        "# Gold",
        "Span P %",
        "Span R %",
        "Span F1 %",
        "SLU P %",
        "SLU R %",
        "SLU-F1 %",
    ]
    slu = result.slu
    type_rows = []
    for label in sorted(set(result.span.labels()) | set(slu.labels())):
        exact, partial = result.span.score(label), slu.score(label)
        type_rows.append(
            [label, _tallies(exact.tp + exact.fn), _pct(exact.precision), _pct(exact.recall), _pct(exact.f1),
             _pct(partial.precision), _pct(partial.recall), _pct(partial.f1)]
        )  # fmt: skip
    if type_rows:
        out.append(_box(f"{name}: entity types", type_header, type_rows))
    out.append(_notes(result, wer))
    return "\n".join(out)


def _notes(result: SlurpEvaluation, wer: float | None) -> str:
    notes = []
    if wer is not None:
        notes.append(f"Transcript WER: {wer:.1f} % (score_wer/result.txt)")
    notes.append(
        f"Gold recordings without prediction (left out, as SLURP's evaluate.py): {len(result.missing)}"
    )
    notes.append(f"Predictions for recordings not in the gold data (ignored): {len(result.not_in_gold)}")
    notes.append(f"Predictions without intent (scored as '{NO_INTENT}'): {len(result.no_intent)}")
    notes.append(f"Malformed entity tags (counted as no entity): {result.dropped_entities}")
    if result.unseen_gold_intents is not None:
        gold = result.unseen_gold_intents
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(gold.items())) or "none"
        notes.append(f"Gold intents unseen in training: {sum(gold.values())} recordings: {listed}")
        predicted = sum(result.unseen_predicted_intents.values())
        notes.append(f"Predicted intents unseen in training: {predicted} recordings")
    return "".join(f"{note}\n" for note in notes)


# ---------------------------------------------------------------------------------------------
# Reading inputs


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines; ScoringInputError for bytes that are not UTF-8."""
    try:
        raw_lines = Path(path).read_bytes().splitlines()
    except OSError as error:
        raise ScoringInputError(f"cannot read ({error.strerror})", path) from None
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ScoringInputError(
                f"not UTF-8 (byte {raw[error.start]:#04x} at column {error.start + 1})", path, number
            ) from None


def read_gold_jsonl(path: Path) -> dict[str, SluPrediction]:
    """Gold per recording file from a SLURP release jsonl (e.g. test.jsonl), as evaluate.py reads it:
    fillers are the entity's token surfaces, lower-cased, joined by spaces."""
    gold = {}
    for number, line in _jsonl_lines(path):
        try:
            record = parse_record(line)
            entities = tuple(record.gold_entities())
        except (ValueError, KeyError) as error:
            raise ScoringInputError(str(error), path, number) from None
        for recording in record.recordings:
            gold[recording.file] = SluPrediction(record.scenario, record.action, entities)
    return gold


def read_gold_data_dir(data_dir: Path) -> tuple[dict[str, SluPrediction], dict[str, str]]:
    """Gold per recording from a data directory (its `intent`, `entities`, `recording` tables),
    and each utterance's recording file."""
    data_dir = Path(data_dir)
    try:
        intents = read_table(data_dir / "intent")
        entity_lists = read_table(data_dir / "entities")
        recordings = read_table(data_dir / "recording")
    except DataDirError as error:
        raise ScoringInputError(error.reason, error.path or data_dir, error.line) from None
    gold = {}
    for utt_id, file in recordings.items():
        if utt_id not in intents or utt_id not in entity_lists:
            raise ScoringInputError(f"utterance {utt_id!r} lacks an intent or entities", data_dir)
        parts = split_intent(intents[utt_id])
        if parts is None:
            raise ScoringInputError(
                f"intent {intents[utt_id]!r} of {utt_id} is not <scenario>_<action>", data_dir / "intent"
            )
        try:
            entities = _entities(json.loads(entity_lists[utt_id]), strict=True)[0]
        except (json.JSONDecodeError, ValueError) as error:
            raise ScoringInputError(f"entities of {utt_id}: {error}", data_dir / "entities") from None
        gold[file] = SluPrediction(*parts, entities)
    return gold, recordings


def _entities(items: Any, strict: bool) -> tuple[tuple[Entity, ...], int]:
    """Entities of a JSON list of {"type", "filler"}, and how many were dropped as malformed."""
    if not isinstance(items, list):
        if strict:
            raise ValueError("not a list")
        return (), 0
    kept = []
    for item in items:
        if (
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and isinstance(item.get("filler"), str)
        ):
            kept.append(Entity(item["type"], item["filler"]))
        elif strict:
            raise ValueError(f"entity {item!r} is not {{'type': str, 'filler': str}}")
    return tuple(kept), len(items) - len(kept)


def read_predictions_jsonl(path: Path) -> dict[str, SluPrediction]:
    """Predictions per file from SLURP's predictions jsonl `{"file", "scenario", "action", "entities"}`.

    A line that is not JSON, or has no "file", is an error naming the line; a missing or empty
    scenario/action is a prediction without intent; malformed entities are dropped and counted.
    """
    predictions: dict[str, SluPrediction] = {}
    for number, line in _jsonl_lines(path):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ScoringInputError(
                f"malformed JSON ({error.msg} at column {error.colno})", path, number
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("file"), str) or not data["file"]:
            raise ScoringInputError('not an object with a "file"', path, number)
        if data["file"] in predictions:
            logger.warning(
                "%s:%d: %s predicted again; the last prediction counts", path, number, data["file"]
            )
        scenario, action = data.get("scenario"), data.get("action")
        entities, dropped = _entities(data.get("entities", []), strict=False)
        predictions[data["file"]] = SluPrediction(
            scenario if isinstance(scenario, str) and scenario else None,
            action if isinstance(action, str) and action else None,
            entities,
            dropped,
        )
    return predictions


def predictions_from_hypotheses(
    hypotheses: Mapping[str, str],
    recordings: Mapping[str, str],
    hyp_path: Path,
    intents: Mapping[str, str] | None = None,
    intents_path: Path | None = None,
) -> tuple[dict[str, SluPrediction], dict[str, str]]:
    """Predictions per recording, and transcripts per utterance, from slurp_entity hypotheses.

    `intents` (per utterance, e.g. an intent head's, read from `intents_path`) replace the
    hypotheses' intent tokens; one that is not a `<scenario>_<action>` counts as no intent.
    """
    unknown = [utt_id for utt_id in hypotheses if utt_id not in recordings]
    if unknown:
        raise ScoringInputError(
            f"{len(unknown)} hypothesis id(s) not in the gold data: {', '.join(unknown[:5])}", hyp_path
        )
    if intents is not None:
        missing = [utt_id for utt_id in hypotheses if utt_id not in intents]
        if missing:
            raise ScoringInputError(
                f"no intent for {len(missing)} hypothesis id(s): {', '.join(missing[:5])}", intents_path
            )
    predictions, transcripts = {}, {}
    for utt_id, text in hypotheses.items():
        parsed = parse_slu_hypothesis(text)
        prediction = parsed.to_prediction()
        if intents is not None:
            scenario, action = split_intent(intents[utt_id]) or (None, None)
            prediction = dataclasses.replace(prediction, scenario=scenario, action=action)
        predictions[recordings[utt_id]] = prediction
        transcripts[utt_id] = parsed.transcript
    return predictions, transcripts


def read_intents(path: Path) -> set[str]:
    """The intents of a data directory's `intent` table (e.g. the training set's)."""
    try:
        return set(read_table(path).values())
    except DataDirError as error:
        raise ScoringInputError(error.reason, error.path or path, error.line) from None


def jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    """JSON lines, UTF-8 text kept as is."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
