"""Shrink an upstream by random masks (tests, benchmarks): keep about a fraction of every unit type."""

from __future__ import annotations

import argparse
import sys

import torch

from espnet_prune.pruning.checkpoint import CheckpointError, build_model, read_checkpoint, save_checkpoint
from espnet_prune.pruning.cost import upstream_cost
from espnet_prune.pruning.plugin import UpstreamGates, set_random_keep
from espnet_prune.pruning.shrink import shrink_upstream


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ckpt", required=True, help="upstream: S3PRL or fairseq .pt, Hugging Face directory, espnet_prune .safetensors")
    parser.add_argument("--random-keep", dest="keep", type=float, required=True,
                        help="fraction of conv channels, heads and FFN units to keep, in (0, 1]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output .safetensors")
    parser.add_argument("--allow_pickle", action="store_true", help="full unpickling (only for trusted files)")
    args = parser.parse_args(argv)
    if not 0.0 < args.keep <= 1.0:
        parser.error(f"--random-keep must be in (0, 1], got {args.keep}")
    try:
        ckpt = read_checkpoint(args.ckpt, allow_pickle=args.allow_pickle)
        model = build_model(ckpt, source=args.ckpt)
    except CheckpointError as err:
        sys.exit(f"error: {err}")
    dense = upstream_cost(ckpt.arch, 10.0)
    gates = UpstreamGates(ckpt.arch)
    gates.attach(model)
    set_random_keep(gates, args.keep, torch.Generator().manual_seed(args.seed))
    arch = shrink_upstream(model)
    ckpt.weights = {}
    save_checkpoint(model, ckpt, arch, args.out)
    shrunk = upstream_cost(arch, 10.0)
    print(
        f"wrote {args.out}: params {shrunk.params / dense.params:.3f}x, "
        f"MACs (10 s) {shrunk.macs / dense.macs:.3f}x of the dense model"
    )


if __name__ == "__main__":
    main()
