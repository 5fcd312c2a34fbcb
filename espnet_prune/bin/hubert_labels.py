"""HuBERT's first-iteration labels: k-means clusters of MFCC frames, one per 20 ms CNN frame.

    python -m espnet_prune.bin.hubert_labels fit --wav_scp data/train_ssl/wav.scp \\
        --num_clusters 100 --out exp/ssl/kmeans.npy
    python -m espnet_prune.bin.hubert_labels dump --wav_scp data/train_ssl/wav.scp \\
        --kmeans exp/ssl/kmeans.npy --out exp/ssl/train_ssl/labels

``fit`` clusters the frames of a random sample of utterances (``--max_frames``) with scikit-learn's
MiniBatchKMeans and writes the centroids (K, 39) as .npy. ``dump`` writes ``<utt> <label> ...``
(type ``text_int`` for ``espnet_prune.bin.hubert_train``), labels aligned to the CNN's frames (see
:mod:`espnet_prune.ssl.targets`). Outputs appear only when complete.
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from espnet2.fileio.sound_scp import SoundScpReader

from espnet_prune.data.atomic import atomic_file
from espnet_prune.data.cli import configure_logging
from espnet_prune.ssl.targets import SAMPLE_RATE, fit_kmeans, mfcc_features, nearest_centroid

logger = logging.getLogger(__name__)


def utterance_features(wav_scp: Path, utt_ids: Optional[Sequence[str]] = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(utterance id, MFCC frames (T, 39)) for ``utt_ids`` (default: all, in file order)."""
    reader = SoundScpReader(str(wav_scp), dtype="float32")
    for utt_id in reader.keys() if utt_ids is None else utt_ids:
        rate, wav = reader[utt_id]
        if rate != SAMPLE_RATE or wav.ndim != 1:
            raise ValueError(f"{wav_scp}: {utt_id} is {rate} Hz with shape {wav.shape}; expected 16 kHz mono")
        yield utt_id, mfcc_features(torch.from_numpy(wav))


def sample_frames(wav_scp: Path, max_frames: int, seed: int) -> np.ndarray:
    """MFCC frames (N <= max_frames, 39) of utterances drawn at random until there are enough."""
    utt_ids = list(SoundScpReader(str(wav_scp)).keys())
    random.Random(seed).shuffle(utt_ids)
    chunks, total = [], 0
    for _, feats in utterance_features(wav_scp, utt_ids):
        chunks.append(feats[: max_frames - total].numpy())
        total += len(chunks[-1])
        if total >= max_frames:
            break
    return np.concatenate(chunks)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("fit", help="cluster MFCC frames; write the centroids (.npy)")
    fit.add_argument("--wav_scp", type=Path, required=True)
    fit.add_argument("--num_clusters", type=int, default=100)
    fit.add_argument("--max_frames", type=int, default=200_000, help="frames to cluster (default 200,000)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", type=Path, required=True)
    dump = commands.add_parser("dump", help="write each utterance's labels (text_int)")
    dump.add_argument("--wav_scp", type=Path, required=True)
    dump.add_argument("--kmeans", type=Path, required=True, help="centroids written by fit")
    dump.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    configure_logging()
    if args.command == "fit":
        feats = sample_frames(args.wav_scp, args.max_frames, args.seed)
        logger.info("clustering %d frames into %d clusters", len(feats), args.num_clusters)
        try:
            centroids = fit_kmeans(feats, args.num_clusters, args.seed)
        except ValueError as error:
            parser.exit(1, f"hubert_labels: {error}\n")
        with atomic_file(args.out) as tmp, open(tmp, "wb") as f:
            np.save(f, centroids)
    else:
        centroids = torch.from_numpy(np.load(args.kmeans))
        counts = torch.zeros(len(centroids), dtype=torch.long)
        with atomic_file(args.out) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for utt_id, feats in utterance_features(args.wav_scp):
                if len(feats) == 0:
                    parser.exit(1, f"hubert_labels: {utt_id} is shorter than one frame (25 ms)\n")
                labels = nearest_centroid(feats, centroids)
                counts += torch.bincount(labels, minlength=len(centroids))
                f.write(f"{utt_id} {' '.join(map(str, labels.tolist()))}\n")
        used = int((counts > 0).sum())
        logger.info("%d frames; %d of %d clusters used", int(counts.sum()), used, len(centroids))
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
