"""SIGKILL part-way: outputs appear whole or not at all, and a re-run gives an uninterrupted run's bytes.

The command-line tools run as subprocesses and are killed after delays drawn from a seeded RNG
over the length of an uninterrupted run; after each kill nothing may sit under a final output name
unless it is byte-equal to the uninterrupted output. Temporary leftovers of a killed run (which
its cleanup never got to) may remain, under their own names only.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from espnet_prune.data.synth import SynthRequest, synthesize_corpus
from espnet_prune.pruning.presets import make_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(argv: list[str]) -> float:
    """Run `python -m <argv>` to completion; return its duration in seconds."""
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", *argv], env=ENV, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return time.monotonic() - start


def _run_and_kill(argv: list[str], delay: float) -> bool:
    """Start `python -m <argv>`, SIGKILL it after `delay` s; False if it had finished by then."""
    process = subprocess.Popen(
        [sys.executable, "-m", *argv], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


def _files(folder: Path, hidden: bool = False) -> dict[str, bytes]:
    """Files under `folder` by relative path: those with no hidden (temporary) component, or only those."""
    found = {}
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_file() and any(part.startswith(".") for part in relative.parts) == hidden:
            found[str(relative)] = path.read_bytes()
    return found


def _delays(seed: int, count: int, longest: float) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.05, longest) for _ in range(count)]


# ---------------------------------------------------------------------------------------------
# bin.shrink: one safetensors file, written to a temporary name and renamed


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dense") / "dense.pt"
    torch.save(make_checkpoint("wav2vec2", "tiny", seed=1), path)
    return path


def test_shrink_killed_part_way_then_rerun(dense: Path, tmp_path: Path) -> None:
    def argv(out: Path) -> list[str]:
        return ["espnet_prune.bin.shrink", "--ckpt", str(dense), "--random-keep", "0.5", "--seed", "3", "--out", str(out)]

    reference = tmp_path / "reference" / "half.safetensors"
    duration = _run(argv(reference))
    expected = reference.read_bytes()
    out = tmp_path / "out" / "half.safetensors"
    leftover = re.compile(r"half\.safetensors\..+\.tmp")
    for delay in _delays(seed=0, count=3, longest=duration * 1.1):
        _run_and_kill(argv(out), delay)
        if out.exists():
            assert out.read_bytes() == expected, f"partial output under the final name after {delay:.2f} s"
        others = [p.name for p in out.parent.iterdir()] if out.parent.exists() else []
        assert all(name == out.name or leftover.fullmatch(name) for name in others), others
    _run(argv(out))
    assert out.read_bytes() == expected


# ---------------------------------------------------------------------------------------------
# bin.prep_librispeech: data directories built beside their final place and renamed


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupted_ls") / "corpus"
    synthesize_corpus(SynthRequest("librispeech", 11, "tiny"), root, workers=1, progress=False)
    return root


def test_prep_librispeech_killed_part_way_then_rerun(corpus: Path, tmp_path: Path) -> None:
    def argv(out: Path) -> list[str]:
        return ["espnet_prune.bin.prep_librispeech", "--root", str(corpus), "--out", str(out)]

    reference = tmp_path / "reference"
    duration = _run(argv(reference))
    expected = _files(reference)
    assert sorted({name.split("/")[0] for name in expected}) == ["dev_clean", "test_clean", "train_clean_100"]
    out = tmp_path / "out"
    leftover = re.compile(r"\.(train_clean_100|dev_clean|test_clean)\.(tmp|old)-[^/]+(/.*)?")
    # the second half of the kills hit runs that replace complete outputs of earlier ones
    for delay in _delays(seed=1, count=8, longest=duration * 1.2):
        _run_and_kill(argv(out), delay)
        if not out.exists():
            continue
        found = _files(out)
        for data_dir in {name.split("/")[0] for name in found}:
            part = {k: v for k, v in found.items() if k.split("/")[0] == data_dir}
            whole = {k: v for k, v in expected.items() if k.split("/")[0] == data_dir}
            assert part == whole, f"{data_dir} is partial or differs after a kill at {delay:.2f} s"
        assert all(leftover.fullmatch(name) for name in _files(out, hidden=True)), sorted(_files(out, hidden=True))
    _run(argv(out))
    assert _files(out) == expected
