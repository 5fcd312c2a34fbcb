"""Score SLU output with SLURP's metrics: a summary table (result.txt) and every number (metrics.json).

From an ESPnet slurp_entity decode (`<utt-id> <scenario>_<action> SEP <type> FILL <filler> ...
SEP <transcript>`) against a data directory made by prep_slurp:

    python -m espnet_prune.bin.score_slurp --gold_dir data/test --hyp exp/<model>/decode_test/text \\
        --out exp/<model>/decode_test/score_slu [--train_intents data/train/intent]

which also writes predictions.jsonl (SLURP's prediction format), hyp_transcript and, scored
against the data directory's `transcript`, score_wer/. Both ways write per_recording.jsonl: each
recording's intent correctness and SLU-F1 tallies (for significance tests, `slu/significance.py`). From SLURP's own files:

    python -m espnet_prune.bin.score_slurp --gold <slurp>/dataset/slurp/test.jsonl \\
        --predictions predictions.jsonl --out score_slu

Options: --name (table title; default the gold's name), --average micro|macro (default micro).
The output directory appears only when complete.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from espnet_prune.asr.score import ScoringInputError, score
from espnet_prune.data.atomic import atomic_directory
from espnet_prune.data.datadir import read_table
from espnet_prune.slu.metrics import (
    AVERAGES,
    evaluate,
    evaluation_json,
    format_summary,
    jsonl,
    per_recording,
    predictions_from_hypotheses,
    read_gold_data_dir,
    read_gold_jsonl,
    read_intents,
    read_predictions_jsonl,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    gold = parser.add_mutually_exclusive_group(required=True)
    gold.add_argument(
        "--gold_dir", "--gold-dir", type=Path, help="data directory with intent, entities, recording"
    )
    gold.add_argument("--gold", type=Path, help="SLURP release jsonl (e.g. dataset/slurp/test.jsonl)")
    predicted = parser.add_mutually_exclusive_group(required=True)
    predicted.add_argument(
        "--hyp", type=Path, help="slurp_entity hypotheses `<utt-id> <target>` (needs --gold_dir)"
    )
    predicted.add_argument(
        "--predictions", type=Path, help="SLURP predictions jsonl, keyed by recording file"
    )
    parser.add_argument(
        "--hyp_intent",
        "--hyp-intent",
        type=Path,
        help="`<utt-id> <scenario>_<action>` per hypothesis (an intent head's, asr_decode's `intent`): "
        "replaces the hypotheses' intent tokens (needs --hyp)",
    )
    parser.add_argument("--out", required=True, type=Path, help="score directory to (re)write")
    parser.add_argument(
        "--train_intents",
        "--train-intents",
        type=Path,
        help="training `intent` table, to report unseen intents",
    )
    parser.add_argument("--name", help="test set name for the table (default: the gold's name)")
    parser.add_argument("--average", choices=AVERAGES, default="micro")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.hyp is not None and args.gold_dir is None:
        parser.error("--hyp needs --gold_dir (the utterance-to-recording map)")
    if args.hyp_intent is not None and args.hyp is None:
        parser.error("--hyp_intent needs --hyp")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"
    )
    try:
        run(args)
    except (ScoringInputError, RuntimeError) as error:
        logging.error("%s", error)
        return 1
    return 0


def run(args: argparse.Namespace) -> None:
    """Read, score and write the score directory."""
    # A report left from an earlier run would look current if this one failed or were interrupted.
    shutil.rmtree(args.out, ignore_errors=True)
    if args.gold_dir is not None:
        gold, recordings = read_gold_data_dir(args.gold_dir)
        name = args.name or args.gold_dir.name
    else:
        gold, recordings = read_gold_jsonl(args.gold), {}
        name = args.name or args.gold.stem
    transcripts = None
    if args.hyp is not None:
        intents = None if args.hyp_intent is None else read_table(args.hyp_intent, strict=False, error=ScoringInputError)
        predictions, transcripts = predictions_from_hypotheses(
            read_table(args.hyp, strict=False, error=ScoringInputError), recordings, args.hyp, intents, args.hyp_intent
        )
    else:
        predictions = read_predictions_jsonl(args.predictions)
    train_intents = None if args.train_intents is None else read_intents(args.train_intents)
    result = evaluate(gold, predictions, train_intents)
    metrics = evaluation_json(result, name, args.average)
    with atomic_directory(args.out) as tmp:
        wer = None
        if transcripts is not None:
            (tmp / "predictions.jsonl").write_text(
                jsonl(p.to_json(file) for file, p in predictions.items()), encoding="utf-8"
            )
            (tmp / "hyp_transcript").write_text(
                "".join(f"{utt_id} {text}".rstrip() + "\n" for utt_id, text in sorted(transcripts.items())),
                encoding="utf-8",
            )
            wer = _score_transcripts(args.gold_dir, tmp)
            metrics["wer"] = wer
        (tmp / "per_recording.jsonl").write_text(jsonl(per_recording(gold, predictions)), encoding="utf-8")
        (tmp / "metrics.json").write_text(
            json.dumps(metrics, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (tmp / "result.txt").write_text(
            format_summary(result, name, args.average, None if wer is None else wer["wer"]), encoding="utf-8"
        )
    print((args.out / "result.txt").read_text(encoding="utf-8"), end="")


def _score_transcripts(gold_dir: Path, score_dir: Path) -> dict | None:
    """WER of the hypotheses' transcripts against the data directory's `transcript`, if it has one."""
    reference = gold_dir / "transcript"
    if not reference.is_file():
        logging.warning("%s missing: transcript WER not computed", reference)
        return None
    utt2spk = gold_dir / "utt2spk"
    scored = score(
        reference,
        score_dir / "hyp_transcript",
        score_dir / "score_wer",
        utt2spk_path=utt2spk if utt2spk.is_file() else None,
    )
    return scored.summary


if __name__ == "__main__":
    sys.exit(main())
