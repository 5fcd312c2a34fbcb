"""Kaldi/ESPnet data directories from LibriSpeech: `<out>/train_clean_100`, `<out>/dev_clean`, ...

    python -m espnet_prune.bin.prep_librispeech --root <folder with LibriSpeech/> \
        --subsets train-clean-100 dev-clean test-clean --out data [--skip-bad]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet_prune.data.cli import add_data_prep_arguments, audio_policy, configure_logging, run_data_prep
from espnet_prune.data.librispeech import SUBSETS, prepare_librispeech


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", required=True, type=Path, help="the folder that contains LibriSpeech/")
    parser.add_argument(
        "--subsets",
        nargs="+",
        choices=SUBSETS,
        default=["train-clean-100", "dev-clean", "test-clean"],
        help="subsets to prepare (default: train-clean-100 dev-clean test-clean)",
    )
    add_data_prep_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    return run_data_prep(
        lambda: prepare_librispeech(args.root, args.subsets, Path(args.out), args.skip_bad, audio_policy(args))
    )


if __name__ == "__main__":
    sys.exit(main())
