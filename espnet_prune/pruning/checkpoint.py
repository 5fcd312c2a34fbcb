"""Upstream checkpoints on disk: dense S3PRL checkpoints and espnet_prune's shrunk ones.

* Dense checkpoints are S3PRL's converted format, the file that ``S3PRLUpstream("wav2vec2_local"
  | "hubert_local", path_or_url=...)`` reads: ``{"task_cfg", "model_cfg", "model_weight"}`` (+
  ``"dictionaries_symbols"`` for HuBERT). A raw fairseq checkpoint must first be converted with
  S3PRL's converter (``python -m s3prl.upstream.wav2vec2.convert``, which needs fairseq).
* Shrunk (or re-saved) checkpoints are one safetensors file: the weights, and in its metadata
  the configs and the per-layer pruned architecture. Loading one runs no code.

Only S3PRL's model classes are imported here (not ``s3prl.nn``, whose hub import takes ~15 s),
so command-line tools that only read or write checkpoints start fast.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from espnet_prune.pruning.arch import UpstreamArch
from espnet_prune.pruning.shrink import apply_arch_

FORMAT = "espnet_prune.upstream/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as a wav2vec2/HuBERT upstream."""


@dataclass
class SSLCheckpoint:
    """What an upstream checkpoint holds, in memory."""

    model_type: str
    task_cfg: dict[str, Any]
    model_cfg: dict[str, Any]
    weights: dict[str, torch.Tensor]
    dictionaries_symbols: Optional[list] = None
    pruned: Optional[dict[str, list]] = None

    @property
    def arch(self) -> UpstreamArch:
        return UpstreamArch.from_model_cfg(self.model_type, self.model_cfg, self.pruned)


def _model_type(model_cfg: dict, has_dictionaries: bool, path: str) -> str:
    name = model_cfg.get("_name")
    if name in ("wav2vec2", "hubert"):
        return name
    if name is not None:
        raise CheckpointError(f"{path}: model '{name}' is not a wav2vec2 or HuBERT model")
    return "hubert" if has_dictionaries else "wav2vec2"


def _is_safetensors(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_checkpoint(path: str | os.PathLike, allow_pickle: bool = False) -> SSLCheckpoint:
    """Read a dense S3PRL checkpoint or a shrunk safetensors checkpoint.

    Pickled checkpoints are read with ``torch.load(weights_only=True)``; one that needs arbitrary
    unpickling is refused unless ``allow_pickle`` is set (it can run code: only for files you trust).
    """
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if _is_safetensors(path):
        return _read_safetensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types (UnpicklingError, KeyError, RuntimeError) for non-checkpoints
        needs_code = "Weights only load failed" in str(err)
        if not (needs_code and allow_pickle):
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            hint = (
                " It needs full unpickling, which can run code; pass allow_pickle=True "
                "(--allow_pickle) only for a file you trust."
                if needs_code
                else ""
            )
            raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({reason}).{hint}") from None
        logging.warning("%s: loading with full unpickling (allow_pickle=True); this can run code", path)
        state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a checkpoint dict")
    if "cfg" in state and "model" in state and "model_weight" not in state:
        raise CheckpointError(
            f"{path}: is a raw fairseq checkpoint; convert it to S3PRL's format first, e.g. "
            "`python -m s3prl.upstream.wav2vec2.convert PATH --output_dir DIR` (or s3prl.upstream.hubert.convert)"
        )
    missing = [k for k in ("task_cfg", "model_cfg", "model_weight") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not an S3PRL wav2vec2/HuBERT checkpoint (missing keys {missing})")
    model_type = _model_type(state["model_cfg"], "dictionaries_symbols" in state, path)
    if model_type == "hubert" and "dictionaries_symbols" not in state:
        raise CheckpointError(f"{path}: HuBERT checkpoint without 'dictionaries_symbols'")
    ckpt = SSLCheckpoint(
        model_type=model_type,
        task_cfg=dict(state["task_cfg"]),
        model_cfg=dict(state["model_cfg"]),
        weights=dict(state["model_weight"]),
        dictionaries_symbols=state.get("dictionaries_symbols"),
    )
    try:
        ckpt.arch
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    return ckpt


def _read_safetensors(path: str) -> SSLCheckpoint:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            weights = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:  # safetensors raises its own error types for truncated/corrupt files
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: safetensors file is not an espnet_prune upstream (format={meta.get('format')!r})")
    try:
        ckpt = SSLCheckpoint(
            model_type=meta["model_type"],
            task_cfg=json.loads(meta["task_cfg"]),
            model_cfg=json.loads(meta["model_cfg"]),
            weights=weights,
            dictionaries_symbols=json.loads(meta["dictionaries_symbols"]),
            pruned=json.loads(meta["pruned"]),
        )
        ckpt.arch
    except (KeyError, json.JSONDecodeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad espnet_prune metadata ({err})") from None
    return ckpt


def build_model(ckpt: SSLCheckpoint, source: str = "checkpoint") -> nn.Module:
    """Construct the S3PRL model class of ``ckpt`` and load its weights (pretraining heads dropped)."""
    from s3prl.upstream.utils import merge_with_parent

    if ckpt.model_type == "wav2vec2":
        from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

        model = Wav2Vec2Model(merge_with_parent(Wav2Vec2Config, ckpt.model_cfg))
    else:
        from s3prl.upstream.hubert.hubert_model import HubertConfig, HubertModel, HubertPretrainingConfig

        model = HubertModel(
            merge_with_parent(HubertConfig, ckpt.model_cfg),
            merge_with_parent(HubertPretrainingConfig, ckpt.task_cfg),
            ckpt.dictionaries_symbols,
        )
    try:
        if ckpt.pruned is None:
            model.load_state_dict(ckpt.weights)
            model.remove_pretraining_modules()
        else:
            model.remove_pretraining_modules()
            apply_arch_(model, ckpt.arch)
            model.load_state_dict(ckpt.weights)
    except RuntimeError as err:
        raise CheckpointError(f"{source}: weights do not match the recorded architecture: {err}") from None
    return model


def save_checkpoint(model: nn.Module, info: SSLCheckpoint, arch: UpstreamArch, path: str | os.PathLike) -> None:
    """Write ``model``'s weights with ``info``'s configs and ``arch`` as one safetensors file, atomically."""
    from safetensors.torch import save_file

    if hasattr(model, "pruning_gates"):
        raise ValueError("gates are attached: shrink the upstream before saving it")
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "model_type": info.model_type,
        "task_cfg": json.dumps(info.task_cfg),
        "model_cfg": json.dumps(info.model_cfg),
        "dictionaries_symbols": json.dumps(info.dictionaries_symbols),
        "pruned": json.dumps(arch.pruned_dict()),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(weights, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
