"""Score ASR hypotheses like ESPnet's score_wer/score_cer: ref.trn, hyp.trn and sclite's result.txt.

    python -m espnet_prune.bin.score_asr --ref data/test/text --hyp exp/<model>/decode_test/text \\
        --out exp/<model>/decode_test/score_wer [--unit char] [--utt2spk data/test/utt2spk] \\
        [--scorer auto|sclite|python] [--json]

sclite is run when installed (`sclite` or Debian's `sctk sclite`); otherwise the same report is
computed in Python. Utterances without hypothesis are scored as empty and listed in
<out>/missing_hyp; hypothesis ids missing from the reference are an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from espnet_prune.asr.score import UNITS, ScoringInputError, score

SCORERS = {"auto": None, "sclite": True, "python": False}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref", required=True, type=Path, help="reference text table `<utt-id> <words>`")
    parser.add_argument("--hyp", required=True, type=Path, help="hypothesis text table, same format")
    parser.add_argument("--out", required=True, type=Path, help="score directory to (re)write")
    parser.add_argument("--unit", choices=UNITS, default="word", help="word (WER) or char (CER)")
    parser.add_argument("--utt2spk", type=Path, help="speakers (default: utterance id up to its first '-')")
    parser.add_argument(
        "--scorer", choices=list(SCORERS), default="auto", help="auto: sclite when installed (default)"
    )
    parser.add_argument("--json", action="store_true", help="print the totals as one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"
    )
    try:
        result = score(args.ref, args.hyp, args.out, args.unit, args.utt2spk, SCORERS[args.scorer])
    except (ScoringInputError, RuntimeError) as error:
        logging.error("%s", error)
        return 1
    totals = {**result.summary, "missing_hyp": len(result.missing_hyp), "scorer": result.scorer}
    if args.json:
        print(json.dumps(totals))
    else:
        name = "WER" if args.unit == "word" else "CER"
        print(
            f"{result.score_dir}/result.txt: {name} {totals['err']:.1f} % "
            f"(S.Err {totals['serr']:.1f} %, {totals['n_sent']} sentences, {totals['n_words']} tokens, "
            f"{len(result.missing_hyp)} without hypothesis; {result.scorer})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
