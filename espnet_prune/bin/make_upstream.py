"""Write a random-init wav2vec2/HuBERT checkpoint in S3PRL's converted format."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from espnet_prune.pruning.presets import PRESETS, make_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", choices=("wav2vec2", "hubert"), required=True)
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    ckpt = make_checkpoint(args.arch, args.preset, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=args.out.name + ".", suffix=".tmp", dir=args.out.parent)
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {args.out} ({args.arch}, {args.preset})")


if __name__ == "__main__":
    main()
