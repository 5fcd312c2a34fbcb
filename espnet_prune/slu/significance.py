"""Are two SLU systems' intent accuracy and SLU-F1 different? McNemar's test and a paired bootstrap.

Both compare systems A and B recording by recording (``per_recording.jsonl`` of
``score_slurp``); runs of several seeds are paired by seed and pooled, every (seed, recording) one
item. Intent accuracy: McNemar's exact test on the recordings exactly one system gets right
(two-sided binomial test with p = 1/2). SLU-F1, a ratio of sums that no per-recording test fits:
the 95 % percentile interval of F1(A) - F1(B) over bootstrap resamples of the items (Koehn 2004's
paired bootstrap); an interval without 0 is a significant difference at the 5 % level.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Sequence

from espnet_prune.slu.metrics import precision_recall_f1

Record = dict  # one line of per_recording.jsonl


def read_per_recording(path: Path) -> dict[str, Record]:
    """per_recording.jsonl keyed by recording file; ValueError naming the line if it is malformed."""
    records = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
            records[record["file"]] = record
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a per_recording record ({error})") from None
    return records


def paired_items(pairs: Sequence[tuple[Path, Path]]) -> list[tuple[Record, Record]]:
    """(A's record, B's record) of every recording both scored, over every pair of runs (seeds)."""
    items = []
    for a_path, b_path in pairs:
        a, b = read_per_recording(a_path), read_per_recording(b_path)
        items += [(a[file], b[file]) for file in sorted(set(a) & set(b))]
    if not items:
        raise ValueError("no recording is scored in both systems' per_recording.jsonl")
    return items


def mcnemar(items: Sequence[tuple[Record, Record]]) -> float:
    """Two-sided exact McNemar p-value of intent accuracy, A vs B (1.0 when they never disagree)."""
    a_only = sum(1 for a, b in items if a["intent_correct"] and not b["intent_correct"])
    b_only = sum(1 for a, b in items if b["intent_correct"] and not a["intent_correct"])
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def _slu_f1(records: Sequence[Record]) -> float:
    tp = sum(r["slu_tp"] for r in records)
    fp = sum(r["slu_fp"] for r in records)
    fn = sum(r["slu_fn"] for r in records)
    return precision_recall_f1(tp, fp, fn)[2]


def bootstrap_f1_difference(
    items: Sequence[tuple[Record, Record]], resamples: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """SLU-F1(A) - SLU-F1(B) (in [-1, 1]) and its 95 % paired-bootstrap percentile interval."""
    rng = random.Random(seed)
    a, b = [x for x, _ in items], [y for _, y in items]
    diffs = []
    for _ in range(resamples):
        chosen = [rng.randrange(len(items)) for _ in items]
        diffs.append(_slu_f1([a[i] for i in chosen]) - _slu_f1([b[i] for i in chosen]))
    diffs.sort()
    low, high = diffs[int(0.025 * resamples)], diffs[min(resamples - 1, int(0.975 * resamples))]
    return _slu_f1(a) - _slu_f1(b), low, high
