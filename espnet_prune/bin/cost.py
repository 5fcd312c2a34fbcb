"""Print the exact parameters and MACs of a dense or shrunk upstream checkpoint."""

from __future__ import annotations

import argparse
import json
import sys

from espnet_prune.pruning.checkpoint import CheckpointError, read_checkpoint
from espnet_prune.pruning.cost import upstream_cost


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ckpt", required=True, help="upstream: S3PRL or fairseq .pt, Hugging Face directory, espnet_prune .safetensors")
    parser.add_argument("--seconds", type=float, default=10.0, help="input length for the MAC count")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--allow_pickle", action="store_true", help="full unpickling (only for trusted files)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    try:
        arch = read_checkpoint(args.ckpt, allow_pickle=args.allow_pickle).arch
        cost = upstream_cost(arch, args.seconds)
    except (CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")
    result = {"seconds": args.seconds, **cost.to_dict()}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.ckpt}: {arch.model_type}, input {args.seconds:g} s")
    for part in ("cnn", "transformer", "total"):
        print(f"  {part:<12} {result['params'][part] / 1e6:9.3f} M params  {result['macs'][part] / 1e9:9.3f} GMACs")


if __name__ == "__main__":
    main()
