"""Decode a data directory with an ``espnet_prune_slu`` model: intent, entities and transcript per utterance.

    python -m espnet_prune.bin.slu_inference --asr_train_config exp/X/config.yaml \\
        --asr_model_file exp/X/valid.acc.ave.pth --data_dir data/test --output_dir exp/X/decode_test

ESPnet's ``Speech2Text`` (joint CTC/attention beam search, optional LM) decodes the tagged text
``<scenario>_<action> SEP <type> FILL <filler> ... SEP <transcript>``; the intent head reads the same
encoder pass. The head's intent is the prediction; the decoder's intent token is kept beside it.
Entities and transcript come from the tagged text; a malformed entity tag counts as no entity.

Writes, each file replaced only when complete: ``text`` (``<utt> <tagged hypothesis>``, as ESPnet's
decode directories; ``score_slurp --hyp`` reads it), ``predictions.jsonl`` (SLURP's prediction
format: ``file`` = the data directory's ``recording`` (else the utterance id), ``slurp_id``,
``scenario``, ``action``, ``entities`` [{type, filler}]; plus ``intent``, ``transcript``,
``decoder_intent``, ``utt_id``), and ``summary.json`` (the counts it also prints).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

import espnet_prune.tasks.slu  # noqa: F401  (registers espnet_prune_slu and s3prl_prune for Speech2Text)
from espnet_prune.data.atomic import atomic_file
from espnet_prune.data.datadir import DataDirError, read_table
from espnet_prune.slu.metrics import parse_slu_hypothesis, split_intent
from espnet_prune.slu.model import PruneSLUModel

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


def decode_data_dir(speech2text: Any, data_dir: Path, output_dir: Path, num_workers: int = 0) -> DecodeSummary:
    """Decode every utterance of ``data_dir/wav.scp`` with ``speech2text`` (an ESPnet Speech2Text
    holding a :class:`PruneSLUModel`) and write ``output_dir``'s files."""
    from espnet2.tasks.asr import ASRTask
    from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

    model = speech2text.asr_model
    if not isinstance(model, PruneSLUModel):
        raise SystemExit(f"slu_inference: the model is {type(model).__name__}, not an espnet_prune_slu model")
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    recordings = _optional_table(data_dir, "recording")
    if recordings is None:
        logger.warning("%s has no recording table: predictions name utterance ids as files", data_dir)
    slurp_ids = _optional_table(data_dir, "slurp_id") or {}
    summary = DecodeSummary()
    gold = _optional_table(data_dir, "intent")
    if gold is not None:
        summary.unseen_gold_intents = unseen_gold_intents(gold, model.intent_list)
        if summary.unseen_gold_intents:
            logger.warning(
                "%d utterances of %s have intents unseen in training, which the head cannot predict: %s",
                sum(summary.unseen_gold_intents.values()), data_dir, summary.unseen_gold_intents,
            )  # fmt: skip
    train_args = speech2text.asr_train_args
    loader = ASRTask.build_streaming_iterator(
        [(str(data_dir / "wav.scp"), "speech", "sound")],
        dtype=speech2text.dtype,
        batch_size=1,
        num_workers=num_workers,
        preprocess_fn=ASRTask.build_preprocess_fn(train_args, False),
        collate_fn=ASRTask.build_collate_fn(train_args, False),
        inference=True,
    )
    predictions = []
    for keys, batch in loader:
        utt_id = keys[0]
        hypothesis, head_intent = "", None
        with torch.no_grad(), model.capture_encoder_output() as captured:
            try:
                results = speech2text(batch["speech"][0])
            except TooShortUttError as error:
                logger.warning("utterance %s: %s (no prediction)", utt_id, error)
                summary.too_short.append(utt_id)
                results = []
            if isinstance(results, tuple):  # with intermediate CTC: (n-best, intermediate results)
                results = results[0]
            if results:
                hypothesis = results[0][0] or ""
            if captured:
                head_intent = model.head_intents(captured)[0]
        prediction = predict_utterance(
            utt_id, recordings.get(utt_id, utt_id) if recordings else utt_id, slurp_ids.get(utt_id), hypothesis,
            head_intent,
        )  # fmt: skip
        summary.add(prediction)
        predictions.append(prediction)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(output_dir / TEXT_NAME, (f"{p.utt_id} {p.hypothesis}".rstrip() + "\n" for p in predictions))
    write_atomically(
        output_dir / PREDICTIONS_NAME, (json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in predictions)
    )
    write_atomically(output_dir / SUMMARY_NAME, [json.dumps(summary.to_json(), indent=1) + "\n"])
    if summary.no_intent:
        logger.warning("%d utterances have no intent (scored as <none>)", len(summary.no_intent))
    if summary.malformed_entity_tags:
        logger.warning("%d malformed entity tags counted as no entity", summary.malformed_entity_tags)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr_train_config", type=Path, required=True, help="config.yaml of the model")
    parser.add_argument("--asr_model_file", type=Path, required=True, help="the model's .pth")
    parser.add_argument("--data_dir", type=Path, required=True, help="data directory with wav.scp")
    parser.add_argument("--output_dir", type=Path, required=True, help="where text and predictions.jsonl go")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64"])
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--beam_size", type=int, default=10)
    parser.add_argument("--ctc_weight", type=float, default=0.3)
    parser.add_argument("--penalty", type=float, default=0.0)
    parser.add_argument("--maxlenratio", type=float, default=0.0, help="0: up to the encoder's length")
    parser.add_argument("--minlenratio", type=float, default=0.0)
    parser.add_argument("--lm_train_config", type=Path, default=None)
    parser.add_argument("--lm_file", type=Path, default=None)
    parser.add_argument("--lm_weight", type=float, default=1.0)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    # espnet2.bin.asr_inference imports the enhancement models too (ci_sdr, fast_bss_eval)
    from espnet2.bin.asr_inference import Speech2Text

    speech2text = Speech2Text(
        asr_train_config=args.asr_train_config,
        asr_model_file=args.asr_model_file,
        lm_train_config=args.lm_train_config,
        lm_file=args.lm_file,
        lm_weight=args.lm_weight,
        device=args.device,
        dtype=args.dtype,
        beam_size=args.beam_size,
        ctc_weight=args.ctc_weight,
        penalty=args.penalty,
        maxlenratio=args.maxlenratio,
        minlenratio=args.minlenratio,
        nbest=1,
    )
    summary = decode_data_dir(speech2text, args.data_dir, args.output_dir, args.num_workers)
    print(json.dumps(summary.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
