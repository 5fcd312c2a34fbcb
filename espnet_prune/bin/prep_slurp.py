"""Kaldi/ESPnet data directories from SLURP: `<out>/train`, `<out>/devel`, `<out>/test`.

Besides wav.scp, text (ESPnet slurp_entity's target), utt2spk and spk2utt, each directory has
`intent`, `transcript`, `entities` (JSON), `slurp_id` and `recording` (the audio file name).

    python -m espnet_prune.bin.prep_slurp --slurp_root <SLURP folder> --out data [--skip-bad]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet_prune.data.cli import add_data_prep_arguments, audio_policy, configure_logging, run_data_prep
from espnet_prune.data.slurp import SPLITS, prepare_slurp


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--slurp_root",
        "--slurp-root",
        required=True,
        type=Path,
        help="SLURP's folder (holding dataset/slurp/ and audio/)",
    )
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="(default: all)")
    parser.add_argument(
        "--no_train_synthetic",
        "--no-train-synthetic",
        action="store_true",
        help="leave train_synthetic.jsonl (slurp_synth audio) out of train",
    )
    add_data_prep_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    return run_data_prep(
        lambda: prepare_slurp(
            args.slurp_root,
            Path(args.out),
            args.splits,
            include_synthetic=not args.no_train_synthetic,
            skip_bad=args.skip_bad,
            audio_policy=audio_policy(args),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
