"""Make a small synthetic corpus (espeak-ng speech) in LibriSpeech's or SLURP's on-disk layout.

    python -m espnet_prune.bin.synth_corpus --layout librispeech --out DIR --seed 0 --size ci
        -> DIR/LibriSpeech/{train-clean-100,dev-clean,test-clean}/..., SPEAKERS.TXT, ...
           (then: prep_librispeech --root DIR)
    python -m espnet_prune.bin.synth_corpus --layout slurp --out DIR --seed 0 --size ci
        -> DIR/dataset/slurp/*.jsonl, metadata.json, DIR/audio/slurp_{real,synth}/*.flac
           (then: prep_slurp --slurp_root DIR)

Sizes: ci (a few hundred utterances, well under a minute on 2 cores), small (a few thousand),
medium (about four times small); tiny is for tests. The same layout, seed and size give the same
bytes. DIR appears only when complete. If DIR already holds the same corpus nothing is done
(exit 0); if it holds anything else, nothing is touched and the exit status is 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from espnet_prune.data.cli import configure_logging
from espnet_prune.data.synth import LAYOUTS, SIZES, SynthOutputExistsError, SynthRequest, synthesize_corpus

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layout", required=True, choices=LAYOUTS)
    parser.add_argument("--out", required=True, type=Path, help="folder to create")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--size", choices=SIZES, default="ci", help="(default: ci)")
    parser.add_argument(
        "--nj", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)"
    )
    parser.add_argument("--no_progress", "--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no_pretraining_split",
        action="store_true",
        help="librispeech: leave out train-clean-360, the unlabelled pretraining audio (the other subsets are the same bytes)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    if args.no_pretraining_split and args.layout != "librispeech":
        parser.error("--no_pretraining_split is for --layout librispeech")
    request = SynthRequest(args.layout, args.seed, args.size, not args.no_pretraining_split)
    try:
        synthesize_corpus(request, args.out, args.nj, progress=not args.no_progress)
    except SynthOutputExistsError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
