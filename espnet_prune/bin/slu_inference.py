"""Decode a data directory with an ``espnet_prune_slu`` model: intent, entities and transcript per utterance.

    python -m espnet_prune.bin.slu_inference --asr_train_config exp/X/config.yaml \\
        --asr_model_file exp/X/valid.acc.ave.pth --decode_config conf/decode_slu.yaml \\
        --data_dir data/test --output_dir exp/X/decode_test [--nj 2]

The decoding is ``asr_decode``'s (ESPnet's ``Speech2Text``: joint CTC/attention beam search of the
tagged text ``<scenario>_<action> SEP <type> FILL <filler> ... SEP <transcript>``, optional LM, the
intent head reading the same encoder pass; same options). This adds SLURP's view of its output:
the head's intent is the prediction, the decoder's intent token is kept beside it; entities and
transcript come from the tagged text; a malformed entity tag counts as no entity.

Writes, each file replaced only when complete: asr_decode's files (``text``, ``token``, ``intent``,
``decode.json``), ``predictions.jsonl`` (SLURP's prediction format: ``file`` = the data directory's
``recording`` (else the utterance id), ``slurp_id``, ``scenario``, ``action``, ``entities``
[{type, filler}]; plus ``intent``, ``transcript``, ``decoder_intent``, ``utt_id``), and
``summary.json`` (the counts it also prints).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from espnet_prune.asr.score import ScoringInputError
from espnet_prune.bin import asr_decode
from espnet_prune.data.atomic import atomic_file
from espnet_prune.data.datadir import DataDirError, read_table
from espnet_prune.slu.metrics import parse_slu_hypothesis, split_intent

logger = logging.getLogger(__name__)

TEXT_NAME, PREDICTIONS_NAME, SUMMARY_NAME = "text", "predictions.jsonl", "summary.json"


@dataclass(frozen=True)
class UtterancePrediction:
    """What the model says about one utterance.

    ``intent`` is the head's when there is one, else the decoder's; None (no intent) when neither
    is a ``<scenario>_<action>``. ``dropped_entities`` counts malformed entity tags.
    """

    utt_id: str
    file: str
    slurp_id: Optional[str]
    hypothesis: str
    intent: Optional[str]
    decoder_intent: Optional[str]
    entities: tuple[tuple[str, str], ...]
    transcript: str
    dropped_entities: int

    @property
    def scenario_action(self) -> tuple[str, str] | tuple[None, None]:
        parts = split_intent(self.intent) if self.intent else None
        return parts if parts is not None else (None, None)

    def to_json(self) -> dict[str, Any]:
        """A line of SLURP's predictions jsonl (evaluate.py reads file/slurp_id, scenario, action, entities)."""
        scenario, action = self.scenario_action
        row: dict[str, Any] = {"file": self.file}
        if self.slurp_id is not None:
            # SLURP's gold slurp_id is an integer; evaluate.py --load-gold matches on it
            row["slurp_id"] = int(self.slurp_id) if self.slurp_id.isdigit() else self.slurp_id
        row.update(
            scenario=scenario or "",
            action=action or "",
            intent=f"{scenario}_{action}" if scenario else "",
            entities=[{"type": t, "filler": f} for t, f in self.entities],
            transcript=self.transcript,
            decoder_intent=self.decoder_intent or "",
            utt_id=self.utt_id,
        )
        return row


def predict_utterance(
    utt_id: str, file: str, slurp_id: Optional[str], hypothesis: str, head_intent: Optional[str]
) -> UtterancePrediction:
    """Combine the decoded tagged text and the head's intent; never raises on a malformed hypothesis."""
    parsed = parse_slu_hypothesis(hypothesis)
    intent = head_intent if head_intent is not None and split_intent(head_intent) else parsed.intent
    return UtterancePrediction(
        utt_id=utt_id,
        file=file,
        slurp_id=slurp_id,
        hypothesis=" ".join(hypothesis.split()),
        intent=intent if intent and split_intent(intent) else None,
        decoder_intent=parsed.intent,
        entities=tuple((e.type, e.filler) for e in parsed.entities),
        transcript=parsed.transcript,
        dropped_entities=parsed.dropped_entities,
    )


@dataclass
class DecodeSummary:
    """Counts over a decoded data directory (written as summary.json)."""

    utterances: int = 0
    no_intent: list[str] = field(default_factory=list)
    decoder_no_intent: int = 0
    head_decoder_differ: int = 0
    malformed_entity_tags: int = 0
    too_short: list[str] = field(default_factory=list)
    unseen_gold_intents: Optional[dict[str, int]] = None  # gold intents the head cannot predict

    def add(self, prediction: UtterancePrediction) -> None:
        self.utterances += 1
        if prediction.intent is None:
            self.no_intent.append(prediction.utt_id)
        if prediction.decoder_intent is None:
            self.decoder_no_intent += 1
        elif prediction.intent is not None and prediction.decoder_intent != prediction.intent:
            self.head_decoder_differ += 1
        self.malformed_entity_tags += prediction.dropped_entities

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _optional_table(data_dir: Path, name: str) -> Optional[dict[str, str]]:
    path = data_dir / name
    if not path.is_file():
        return None
    try:
        return read_table(path)
    except DataDirError as error:
        raise SystemExit(f"slu_inference: {error}") from None


def unseen_gold_intents(gold: Mapping[str, str], intent_list: Sequence[str]) -> dict[str, int]:
    """Gold intents (per utterance) that are not among the model's intents, with their counts."""
    known = set(intent_list)
    return dict(sorted(Counter(i for i in gold.values() if i not in known).items()))


def write_atomically(path: Path, lines: Iterable[str]) -> None:
    """Write the lines to a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.writelines(lines)


def write_predictions(train_config: Path, data_dir: Path, decode_dir: Path) -> DecodeSummary:
    """SLURP predictions (predictions.jsonl) and summary.json from asr_decode's ``text`` and ``intent``
    in ``decode_dir``, for the utterances of ``data_dir`` decoded by the model of ``train_config``."""
    data_dir, decode_dir = Path(data_dir), Path(decode_dir)
    with open(train_config, encoding="utf-8") as f:
        intent_list = (yaml.safe_load(f).get("model_conf") or {}).get("intent_list")
    if intent_list is None:
        raise SystemExit(f"slu_inference: {train_config} has no model_conf.intent_list: not an espnet_prune_slu model")
    try:  # hypotheses can be empty (nothing decoded): read as the scorers read them
        hypotheses = read_table(decode_dir / TEXT_NAME, strict=False, error=ScoringInputError)
        head = read_table(decode_dir / "intent", strict=False, error=ScoringInputError) if (decode_dir / "intent").is_file() else {}
    except ScoringInputError as error:
        raise SystemExit(f"slu_inference: {error}") from None
    recordings = _optional_table(data_dir, "recording")
    if recordings is None:
        logger.warning("%s has no recording table: predictions name utterance ids as files", data_dir)
    slurp_ids = _optional_table(data_dir, "slurp_id") or {}
    summary = DecodeSummary()
    summary.too_short = json.loads((decode_dir / "decode.json").read_text(encoding="utf-8")).get("too_short", [])
    gold = _optional_table(data_dir, "intent")
    if gold is not None:
        summary.unseen_gold_intents = unseen_gold_intents(gold, intent_list)
        if summary.unseen_gold_intents:
            logger.warning(
                "%d utterances of %s have intents unseen in training, which the head cannot predict: %s",
                sum(summary.unseen_gold_intents.values()), data_dir, summary.unseen_gold_intents,
            )  # fmt: skip
    predictions = []
    for utt_id, hypothesis in hypotheses.items():
        file = recordings.get(utt_id, utt_id) if recordings else utt_id
        prediction = predict_utterance(utt_id, file, slurp_ids.get(utt_id), hypothesis, head.get(utt_id))
        summary.add(prediction)
        predictions.append(prediction)
    write_atomically(
        decode_dir / PREDICTIONS_NAME, (json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in predictions)
    )
    write_atomically(decode_dir / SUMMARY_NAME, [json.dumps(summary.to_json(), indent=1) + "\n"])
    if summary.no_intent:
        logger.warning("%d utterances have no intent (scored as <none>)", len(summary.no_intent))
    if summary.malformed_entity_tags:
        logger.warning("%d malformed entity tags counted as no entity", summary.malformed_entity_tags)
    return summary


def main(argv: Optional[list[str]] = None) -> int:
    parser = asr_decode.build_parser(__doc__)
    parser.add_argument("--output_dir", type=Path, required=True, help="where the decoding and predictions go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    try:
        conf = asr_decode.decoding_options(args)
        asr_decode.decode_data_dir(args.asr_train_config, args.asr_model_file, args.data_dir, args.output_dir, conf, args.nj)
    except (ValueError, FileNotFoundError) as error:
        logging.error("%s", error)
        return 1
    summary = write_predictions(args.asr_train_config, args.data_dir, args.output_dir)
    print(json.dumps(summary.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
