"""HuBERT's first-iteration targets: k-means clusters of MFCC frames, one per CNN frame.

The CNN of wav2vec2/HuBERT (receptive field 400 samples, stride 320 at 16 kHz) makes its frame
``j`` from samples ``[320 j, 320 j + 400)``: a 25 ms window every 20 ms. Kaldi's MFCC with a
25 ms window every 10 ms (``snip_edges``) has frame ``2 j`` on exactly that window, so every
second MFCC frame is the label of CNN frame ``j``, and there are as many as the CNN makes.
Deltas are computed at 10 ms, as HuBERT's MFCC features are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchaudio

SAMPLE_RATE = 16000
# the CNN's receptive field and stride (samples) that the MFCC frames below are aligned to
WINDOW = 400
STRIDE = 320


def conv_frames(num_samples: torch.Tensor, conv_layers: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """Frames a CNN of unpadded ``(dim, kernel, stride)`` layers makes from ``num_samples`` (any shape)."""
    frames = num_samples
    for _, kernel, stride in conv_layers:
        frames = torch.div(frames - kernel, stride, rounding_mode="floor") + 1
    return frames.clamp(min=0)


def mfcc_features(wav: torch.Tensor) -> torch.Tensor:
    """MFCC (13) + deltas + delta-deltas, normalised per utterance, on the CNN's frames.

    wav: (L,) float at 16 kHz -> (conv_frames(L), 39); no frames (0, 39) for L < 400.
    """
    if wav.numel() < WINDOW:
        return wav.new_zeros(0, 39)
    # Kaldi's MFCC expects 16-bit sample values
    mfcc = torchaudio.compliance.kaldi.mfcc(
        wav[None] * 32768, sample_frequency=SAMPLE_RATE, use_energy=False, num_ceps=13, dither=0.0
    )  # (T10, 13), 25 ms windows every 10 ms
    delta = torchaudio.functional.compute_deltas(mfcc.T)
    feats = torch.cat([mfcc.T, delta, torchaudio.functional.compute_deltas(delta)]).T  # (T10, 39)
    feats = (feats - feats.mean(0)) / (feats.std(0, unbiased=False) + 1e-5)
    return feats[::2]


def nearest_centroid(feats: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Cluster of each frame. feats (T, D), centroids (K, D) -> (T,) int64."""
    return torch.cdist(feats, centroids).argmin(1)


def fit_kmeans(feats: np.ndarray, num_clusters: int, seed: int) -> np.ndarray:
    """Centroids (K, D) of scikit-learn's MiniBatchKMeans on frames (N, D)."""
    from sklearn.cluster import MiniBatchKMeans

    if len(feats) < num_clusters:
        raise ValueError(f"{len(feats)} frames cannot make {num_clusters} clusters")
    kmeans = MiniBatchKMeans(
        n_clusters=num_clusters, batch_size=10000, n_init=3, max_no_improvement=50, random_state=seed
    )
    return kmeans.fit(feats).cluster_centers_.astype(np.float32)
