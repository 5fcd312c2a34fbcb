"""Shared fixtures: tiny random upstream checkpoints in the formats S3PRL reads."""

from __future__ import annotations

import warnings

import pytest
import torch

from espnet_prune.pruning.presets import make_checkpoint

warnings.filterwarnings("ignore", message=".*weight_norm.*")

# (arch, overrides): the default wav2vec2/HuBERT layout, and the layer_norm extractor with
# pre-LN Transformer layers (wav2vec2-large style) whose norms need pruning-aware statistics.
VARIANTS = {
    "wav2vec2": ("wav2vec2", {}),
    "hubert": ("hubert", {}),
    "wav2vec2_ln": ("wav2vec2", {"extractor_mode": "layer_norm", "layer_norm_first": True}),
    # WavLM Base+'s gated relative position bias; a few buckets so that 1 s reaches the log-spaced ones
    "wavlm": ("wavlm", {"num_buckets": 16, "max_distance": 40}),
    "wavlm_ln": ("wavlm", {"num_buckets": 16, "max_distance": 40, "extractor_mode": "layer_norm", "layer_norm_first": True}),
}


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for name, (arch, overrides) in VARIANTS.items():
        path = root / f"{name}.pt"
        torch.save(make_checkpoint(arch, "tiny", seed=1, **overrides), path)
        paths[name] = str(path)
    return paths


@pytest.fixture
def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three utterances of different lengths, zero-padded: (wavs (3, L), lengths (3,))."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([16000, 9000, 12345])
    wavs = torch.randn(3, 16000, generator=g)
    for i, n in enumerate(lengths):
        wavs[i, n:] = 0.0
    return wavs, lengths
