"""Write a random-init wav2vec2/HuBERT/WavLM checkpoint in the format S3PRL reads (its converted
format; microsoft/unilm's for WavLM).

    python -m espnet_prune.bin.make_upstream --arch wav2vec2 --preset small --out up.pt \\
        [--set encoder_layers=6 --set layer_norm_first=true]

``--set KEY=VALUE`` overrides a model config field of the preset (VALUE is read as YAML).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from espnet_prune.data.atomic import atomic_file
from espnet_prune.pruning.presets import PRESETS, make_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", choices=("wav2vec2", "hubert", "wavlm"), required=True)
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_classes", type=int, help="HuBERT: label classes of the pretraining head (k-means K)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a model config field")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    try:
        ckpt = make_checkpoint(args.arch, args.preset, args.seed, args.num_classes, **overrides)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    with atomic_file(args.out) as tmp:
        torch.save(ckpt, tmp)
    print(f"wrote {args.out} ({args.arch}, {args.preset})")


if __name__ == "__main__":
    main()
