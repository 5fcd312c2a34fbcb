"""What the data command-line tools share: logging, bad-input options, error reporting."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from espnet_prune.data.audio import MAX_SECONDS, AudioPolicy
from espnet_prune.data.datadir import PrepSummary
from espnet_prune.data.errors import DataPrepError

logger = logging.getLogger(__name__)


def configure_logging(verbose: bool = False) -> None:
    """ESPnet's log format, on stderr."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )


def add_data_prep_arguments(parser: argparse.ArgumentParser) -> None:
    """--out, --skip-bad, --decode_audio, --max_seconds, --verbose (each also spelt with '_' or '-')."""
    parser.add_argument("--out", default="data", help="folder for the data directories (default: data)")
    parser.add_argument(
        "--skip-bad",
        "--skip_bad",
        dest="skip_bad",
        action="store_true",
        help="log, count and leave out bad input (default: stop at the first, naming file and line)",
    )
    parser.add_argument(
        "--decode_audio",
        "--decode-audio",
        action="store_true",
        help="decode every audio file to catch truncated data (default: read headers only)",
    )
    parser.add_argument(
        "--max_seconds",
        "--max-seconds",
        type=float,
        default=MAX_SECONDS,
        help=f"longer recordings are bad input (default: {MAX_SECONDS:g})",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def audio_policy(args: argparse.Namespace) -> AudioPolicy:
    """The audio checks that the options of :func:`add_data_prep_arguments` ask for."""
    return AudioPolicy(decode=args.decode_audio, max_seconds=args.max_seconds)


def run_data_prep(prepare: Callable[[], PrepSummary]) -> int:
    """Run a data prep; log what it skipped; exit status 1 on bad input."""
    try:
        summary = prepare()
    except DataPrepError as error:
        logger.error("%s", error)
        logger.error("no data directory was left half-written; --skip-bad leaves bad input out")
        return 1
    if summary.skipped:
        logger.warning("skipped %d bad input(s), each logged above", summary.skipped)
    return 0
