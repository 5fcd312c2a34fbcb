"""Write any upstream checkpoint in espnet_prune's format (one .safetensors file, with its checksum).

    python -m espnet_prune.bin.convert --ckpt wav2vec_small.pt --out wav2vec2_base.safetensors
    python -m espnet_prune.bin.convert --ckpt hf/wav2vec2-base --out wav2vec2_base.safetensors

``--ckpt``: S3PRL's converted ``.pt``, a fairseq ``.pt``, a Hugging Face transformers directory
(or its ``config.json``), or an espnet_prune ``.safetensors``. The pretraining and task heads
are left out (the upstream does not use them); the file loads fast and runs no code.
"""

from __future__ import annotations

import argparse
import logging
import sys

from espnet_prune.pruning.checkpoint import CheckpointError, build_model, read_checkpoint, save_checkpoint
from espnet_prune.pruning.cost import upstream_cost


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="the checkpoint to convert (any supported format)")
    parser.add_argument("--out", required=True, help="output .safetensors")
    parser.add_argument("--allow_pickle", action="store_true", help="full unpickling (only for trusted files)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # says which heads are left out
    try:
        ckpt = read_checkpoint(args.ckpt, allow_pickle=args.allow_pickle)
        model = build_model(ckpt, source=args.ckpt)
    except CheckpointError as err:
        sys.exit(f"error: {err}")
    save_checkpoint(model, ckpt, ckpt.arch, args.out)
    params = upstream_cost(ckpt.arch, 1.0).params
    print(f"wrote {args.out}: {ckpt.model_type}, {params / 1e6:.2f} M parameters")


if __name__ == "__main__":
    main()
