"""MAPSSWE through sctk on score directories written by our scorer, pooled over seeds."""

import math
import random

import pytest

from espnet_prune.asr.score import score
from espnet_prune.asr.significance import mapsswe

WORDS = "the cat sat on a mat and dog ran far away from home".split()


def _systems(tmp_path, name: str, error_rates: tuple[float, float], seed: int, n: int = 80):
    """Score dirs of two systems, A and B, each corrupting the same references at its own rate."""
    rng = random.Random(seed)
    refs = {f"spk{i % 4}-utt{i:03d}": [rng.choice(WORDS) for _ in range(10)] for i in range(n)}
    ref_path = tmp_path / f"{name}_text"
    ref_path.write_text("".join(f"{u} {' '.join(w)}\n" for u, w in refs.items()))
    dirs = []
    for system, rate in zip("AB", error_rates):
        hyp_path = tmp_path / f"{name}_{system}_hyp"
        hyp_path.write_text(
            "".join(f"{u} {' '.join(x if rng.random() >= rate else 'zzz' for x in w)}\n" for u, w in refs.items())
        )
        dirs.append(score(ref_path, hyp_path, tmp_path / f"{name}_{system}", use_sclite=True).score_dir)
    return tuple(dirs)


def test_clear_difference_is_significant(tmp_path):
    result = mapsswe([_systems(tmp_path, "s0", (0.03, 0.20), seed=0)])
    assert result.z < -3 and result.p < 1e-3 and result.error_a < result.error_b
    assert result.p == pytest.approx(math.erfc(abs(result.z) / math.sqrt(2)))
    assert result.pairs == 1 and result.segments > 0


def test_identical_systems_are_not_different(tmp_path):
    a, _ = _systems(tmp_path, "s0", (0.1, 0.1), seed=1)
    result = mapsswe([(a, a)])
    assert result.z == 0.0 and result.p == 1.0


def test_seeds_pool_into_one_test(tmp_path):
    pairs = [_systems(tmp_path, f"s{s}", (0.08, 0.12), seed=s, n=40) for s in range(3)]
    one = mapsswe(pairs[:1])
    pooled = mapsswe(pairs)
    assert pooled.pairs == 3
    assert pooled.segments > 2 * one.segments  # every seed's utterances are segments of the pooled test
    assert pooled.error_a < pooled.error_b


def test_different_references_are_refused(tmp_path):
    a, _ = _systems(tmp_path, "s0", (0.1, 0.1), seed=0)
    _, b = _systems(tmp_path, "s1", (0.1, 0.1), seed=1)
    with pytest.raises(ValueError, match="differ"):
        mapsswe([(a, b)])
    with pytest.raises(ValueError, match="at least one"):
        mapsswe([])
