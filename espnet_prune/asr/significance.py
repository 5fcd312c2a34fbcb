"""Is one system's WER significantly different from another's? NIST's MAPSSWE test, pooled over seeds.

The matched-pairs sentence-segment word error test (Gillick & Cox 1989, as NIST's sctk implements
it: ``sc_stats -t mapsswe``) splits each utterance into segments bounded by words both systems got
right and tests whether the mean per-segment difference in errors is zero (a normal test on that
mean). Here the two systems are decoded on the same test set once per training seed; the runs are
paired by seed (system A's seed-s model with system B's seed-s model) and pooled into one test by
giving every utterance of pair s its own id, so the test sees seeds x utterances segments. Its
inputs are the ``ref.trn`` and ``hyp.trn`` files that :func:`espnet_prune.asr.score.score` wrote.

    from espnet_prune.asr.significance import mapsswe
    result = mapsswe([(pruned_seed0/"score_wer", unpruned_seed0/"score_wer"), ...])
    result.p  # two-tailed
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from espnet_prune.asr.score import find_sctk

_RESULT = re.compile(
    r"MTCH_PR_RESULTS .*\(# segs: (?P<segments>\d+)\).*\(% Error:\s*(?P<a>[\d.]+)\s+(?P<b>[\d.]+)\)"
    r".*\(Z Stat:\s*(?P<z>-?[\d.]+)\)"
)


@dataclass(frozen=True)
class MapssweResult:
    """The test's outcome: A vs B over every pooled segment."""

    z: float  # mean difference of segment errors (A - B) over its standard error
    p: float  # two-tailed, from the normal distribution as sc_stats decides
    segments: int
    error_a: float  # % word error of A and B over the pooled utterances (sc_stats' figures)
    error_b: float
    pairs: int  # runs pooled (seeds)


def _pooled_trn(path: Path, pair: int) -> str:
    """The trn file with every id ``(spk-utt)`` made ``(spk-utt-pair<i>)`` (speaker kept)."""
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        words, _, utt_id = line.rpartition("(")
        if not utt_id.endswith(")"):
            raise ValueError(f"{path}:{number}: not a trn line (no '(<utterance id>)' at its end): {line!r}")
        lines.append(f"{words}({utt_id[:-1]}-pair{pair})")
    return "\n".join(lines) + "\n"


def mapsswe(pairs: Sequence[tuple[Path, Path]]) -> MapssweResult:
    """MAPSSWE of system A against system B, pooled over ``pairs`` of score directories.

    Args:
        pairs: per seed, (A's score dir, B's score dir), each holding ``ref.trn`` and ``hyp.trn``
            of the same test set; a pair's two ``ref.trn`` must be identical.

    Raises:
        ValueError: no pairs, or a pair scored against different references.
        RuntimeError: sctk is not installed, or sclite/sc_stats failed.
    """
    if not pairs:
        raise ValueError("mapsswe needs at least one pair of score directories")
    sclite, sc_stats = find_sctk("sclite"), find_sctk("sc_stats")
    if sclite is None or sc_stats is None:
        raise RuntimeError("the MAPSSWE test needs sctk (sclite and sc_stats, or Debian's `sctk`) on PATH")
    for a, b in pairs:
        if (a / "ref.trn").read_bytes() != (b / "ref.trn").read_bytes():
            raise ValueError(f"{a}/ref.trn and {b}/ref.trn differ: the two systems were not scored on the same references")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "ref.trn").write_text("".join(_pooled_trn(a / "ref.trn", i) for i, (a, _) in enumerate(pairs)))
        sgml = []
        for name, side in (("A", 0), ("B", 1)):
            (work / name).write_text("".join(_pooled_trn(pair[side] / "hyp.trn", i) for i, pair in enumerate(pairs)))
            command = [*sclite, "-r", "ref.trn", "trn", "-h", name, "trn", "-i", "rm", "-o", "sgml", "-O", "."]
            done = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not (work / f"{name}.sgml").is_file():
                raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
            sgml.append((work / f"{name}.sgml").read_text(encoding="utf-8"))
        command = [*sc_stats, "-p", "-t", "mapsswe", "-v", "-n", "stats", "-O", "."]
        done = subprocess.run(
            command, cwd=work, input="".join(sgml), capture_output=True, encoding="utf-8", errors="replace", check=False
        )
        report = work / "stats.stats.mapsswe"  # sctk writes some Latin-1 bytes into its tables
        match = _RESULT.search(report.read_text(encoding="latin-1")) if report.is_file() else None
        if done.returncode != 0 or match is None:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    z = float(match["z"])
    return MapssweResult(
        z=z,
        p=math.erfc(abs(z) / math.sqrt(2.0)),
        segments=int(match["segments"]),
        error_a=float(match["a"]),
        error_b=float(match["b"]),
        pairs=len(pairs),
    )
