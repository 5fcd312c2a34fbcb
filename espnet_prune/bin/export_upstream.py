"""Export the upstream of a trained ESPnet model as a dense S3PRL checkpoint.

    python -m espnet_prune.bin.export_upstream --config exp/pretrain/config.yaml \\
        --model_file exp/pretrain/valid.loss.best.pth --out exp/pretrain/upstream.pt

The synthetic recipes use it to turn their stand-in pretraining (CTC training of a small upstream
from scratch, or HuBERT masked prediction with ``espnet_prune.bin.hubert_train``) into the file a
user would otherwise download: S3PRL's converted format ``{"task_cfg", "model_cfg",
"model_weight"}``, read by ``wav2vec2_local`` / ``hubert_local``. Weights the ESPnet model does not
hold (the pretraining heads of a CTC-trained upstream) are taken from the checkpoint the training
started from (``frontend_conf.upstream_ckpt`` or ``model_conf.upstream_ckpt``), so the file loads
strictly in S3PRL. A start without those heads (our dense .safetensors, e.g. the shipped stand-in)
gives a file without them: espnet_prune's loader (a teacher's ``teacher_ckpt``, ``--ssl_ckpt``)
reads it, S3PRL's strict ``load_converted_model`` does not.
Written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import yaml

from espnet_prune.data.atomic import atomic_file
from espnet_prune.pruning.checkpoint import read_checkpoint


def exported_checkpoint(config: Path, model_file: Path) -> dict[str, Any]:
    """The S3PRL checkpoint dict of the ``s3prl_prune`` upstream trained in ``model_file``."""
    with open(config, encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    if "upstream_ckpt" in (conf.get("model_conf") or {}):  # hubert_train: the model is the HubertModel
        init_path, prefix = conf["model_conf"]["upstream_ckpt"], "hubert."
    elif conf.get("frontend") == "s3prl_prune":
        if conf["frontend_conf"].get("pruning_conf") is not None:
            raise ValueError(f"{config}: a pruned model; shrink it (asr_shrink) instead of exporting a dense upstream")
        init_path, prefix = conf["frontend_conf"]["upstream_ckpt"], "frontend.upstream.upstream.model."
    else:
        raise ValueError(f"{config}: frontend is {conf.get('frontend')!r}, not s3prl_prune, and not a hubert_train run")
    init = read_checkpoint(init_path)
    if init.shrunk:
        raise ValueError(f"{config}: the upstream was already shrunk; S3PRL's format holds dense models only")
    state = torch.load(model_file, map_location="cpu", weights_only=True)
    trained = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not trained:
        raise ValueError(f"{model_file}: no upstream weights (keys starting with {prefix!r})")
    weights = dict(init.weights)
    for key, value in trained.items():
        if key not in weights or weights[key].shape != value.shape:
            raise ValueError(f"{model_file}: {key} {tuple(value.shape)} does not match the initial upstream")
        weights[key] = value
    ckpt = {"task_cfg": init.task_cfg, "model_cfg": init.model_cfg, "model_weight": weights}
    if init.dictionaries_symbols is not None:
        ckpt["dictionaries_symbols"] = init.dictionaries_symbols
    return ckpt


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="config.yaml of the training run")
    parser.add_argument("--model_file", type=Path, required=True, help="the trained model's .pth")
    parser.add_argument("--out", type=Path, required=True, help="the S3PRL checkpoint to write (.pt)")
    args = parser.parse_args(argv)
    try:
        ckpt = exported_checkpoint(args.config, args.model_file)
    except (ValueError, FileNotFoundError, KeyError) as error:
        parser.exit(1, f"export_upstream: {error}\n")
    with atomic_file(args.out) as tmp:
        torch.save(ckpt, tmp)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
