"""Upstream checkpoints on disk, in every format they come in, and espnet_prune's own.

:func:`read_checkpoint` reads, into one :class:`SSLCheckpoint` (fairseq/S3PRL configs and tensor
names, which S3PRL's model classes take):

* S3PRL's converted format, the file that ``S3PRLUpstream("wav2vec2_local" | "hubert_local",
  path_or_url=...)`` reads: ``{"task_cfg", "model_cfg", "model_weight"}`` (+
  ``"dictionaries_symbols"`` for HuBERT);
* a fairseq pretraining checkpoint (``wav2vec_small.pt``, ``hubert_base_ls960.pt``), without
  fairseq (:mod:`espnet_prune.pruning.fairseq_format`);
* a Hugging Face transformers directory or its ``config.json`` (``facebook/wav2vec2-base``,
  ``facebook/hubert-base-ls960``; :mod:`espnet_prune.pruning.hf_format`);
* espnet_prune's own: one safetensors file holding the weights, and in its metadata the configs,
  the per-layer pruned architecture, the payload size and a SHA-256 digest of the contents.
  Loading one runs no code, and a truncated or altered file is refused by name. Shrunk models
  are saved so, and ``python -m espnet_prune.bin.convert`` writes any format so once.

Pickles are read with ``torch.load(weights_only=True)`` allowing only the classes fairseq
checkpoints hold. Only S3PRL's model classes are imported here (not ``s3prl.nn``, whose hub
import takes ~15 s), so command-line tools that only read or write checkpoints start fast.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from espnet_prune.pruning.arch import MODEL_TYPES, UpstreamArch
from espnet_prune.pruning.shrink import apply_arch_

FORMAT = "espnet_prune.upstream/1"
# Metadata keys added within format 1; files written before them still load (with a warning).
PAYLOAD_KEY = "payload_bytes"
DIGEST_KEY = "sha256"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as a wav2vec2/HuBERT/WavLM upstream."""


@dataclass
class SSLCheckpoint:
    """What an upstream checkpoint holds, in memory."""

    model_type: str
    task_cfg: dict[str, Any]
    model_cfg: dict[str, Any]
    weights: dict[str, torch.Tensor]
    dictionaries_symbols: Optional[list] = None
    pruned: Optional[dict[str, list]] = None
    # our tensor name -> its name in the file read, where they differ (transformers), for messages
    source_names: Optional[dict[str, str]] = None

    @property
    def arch(self) -> UpstreamArch:
        return UpstreamArch.from_model_cfg(self.model_type, self.model_cfg, self.pruned)

    @property
    def shrunk(self) -> bool:
        """Whether the weights are smaller than ``model_cfg``'s dense model (our .safetensors record
        the architecture even when nothing was pruned)."""
        return self.pruned is not None and self.arch != UpstreamArch.from_model_cfg(self.model_type, self.model_cfg)


def _model_type(model_cfg: dict, has_dictionaries: bool, path: str) -> str:
    name = model_cfg.get("_name")
    if name in MODEL_TYPES:
        return name
    if name is not None:
        raise CheckpointError(f"{path}: model '{name}' is not a wav2vec2, HuBERT or WavLM model")
    return "hubert" if has_dictionaries else "wav2vec2"


def _is_safetensors(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_checkpoint(path: str | os.PathLike, allow_pickle: bool = False) -> SSLCheckpoint:
    """Read an upstream checkpoint of any supported format (see the module docstring).

    A pickle holding a class that fairseq checkpoints do not is refused, naming the class, unless
    ``allow_pickle`` is set (full unpickling can run code: only for files you trust).
    """
    path = str(path)
    if os.path.isdir(path) or os.path.basename(path) == "config.json":
        ckpt = _read_hf(path)
    elif not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    elif _is_safetensors(path):
        return _read_safetensors(path)
    else:
        ckpt = _read_pickle(path, allow_pickle)
    try:
        check_weights_match_arch(ckpt.weights, ckpt.arch, ckpt.source_names)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    return ckpt


def _read_hf(path: str) -> SSLCheckpoint:
    from espnet_prune.pruning.hf_format import read_hf_checkpoint

    try:
        model_type, task_cfg, model_cfg, weights, names = read_hf_checkpoint(path)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    return SSLCheckpoint(model_type, task_cfg, model_cfg, weights, source_names=names)


def _unsafe_globals(path: str, allowed: list[Any]) -> list[str]:
    """The classes and functions a pickle references beyond tensors and ``allowed``."""
    names = {f"{g.__module__}.{g.__qualname__}" for g in allowed}
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # an old (non-zip) torch file: the load error names the first one
        return []
    return sorted(set(found) - names)


def _read_pickle(path: str, allow_pickle: bool) -> SSLCheckpoint:
    from espnet_prune.pruning.fairseq_format import SAFE_GLOBALS, fairseq_configs, is_fairseq_state, is_wavlm_state

    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types (UnpicklingError, KeyError, RuntimeError) for non-checkpoints
        needs_code = "Weights only load failed" in str(err)
        if not (needs_code and allow_pickle):
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if needs_code:
                unsafe = _unsafe_globals(path, SAFE_GLOBALS)
                what = f"holds {', '.join(unsafe)}" if unsafe else f"needs full unpickling ({reason})"
                raise CheckpointError(
                    f"{path}: {what}, which an upstream checkpoint does not: loading it could run code. "
                    "Pass allow_pickle=True (--allow_pickle) only for a file you trust."
                ) from None
            raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({reason}).") from None
        logging.warning("%s: loading with full unpickling (allow_pickle=True); this can run code", path)
        state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a checkpoint dict")
    if is_wavlm_state(state):
        cfg = dict(state["cfg"])
        return SSLCheckpoint("wavlm", {"normalize": bool(cfg.get("normalize", False))}, {**cfg, "_name": "wavlm"}, dict(state["model"]))
    if "model_weight" not in state and is_fairseq_state(state):
        try:
            model_type, task_cfg, model_cfg = fairseq_configs(state, path)
        except ValueError as err:
            raise CheckpointError(str(err)) from None
        return SSLCheckpoint(model_type, task_cfg, model_cfg, dict(state["model"]))
    missing = [k for k in ("task_cfg", "model_cfg", "model_weight") if k not in state]
    if missing:
        raise CheckpointError(
            f"{path}: neither an S3PRL wav2vec2/HuBERT checkpoint (missing keys {missing}), "
            "a fairseq one (keys 'model' and 'cfg' or 'args') nor a WavLM one (keys 'model' and a flat 'cfg')"
        )
    model_type = _model_type(state["model_cfg"], "dictionaries_symbols" in state, path)
    if model_type == "hubert" and "dictionaries_symbols" not in state:
        raise CheckpointError(f"{path}: HuBERT checkpoint without 'dictionaries_symbols'")
    return SSLCheckpoint(
        model_type=model_type,
        task_cfg=dict(state["task_cfg"]),
        model_cfg=dict(state["model_cfg"]),
        weights=dict(state["model_weight"]),
        dictionaries_symbols=state.get("dictionaries_symbols"),
    )


def content_digest(weights: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> str:
    """SHA-256 (hex) of a checkpoint's contents: the metadata but the digest itself, then each
    tensor's name, dtype, shape and bytes, in name order.

    Computed from the tensors in memory, so a loaded file is verified without reading it a second
    time. With the size check this covers every byte of the file: a changed byte either breaks
    the safetensors header or changes what is hashed.
    """
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in meta.items() if k != DIGEST_KEY}, sort_keys=True).encode())
    for name in sorted(weights):
        t = weights[name].detach().cpu().contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        # the record above fixes the byte count, so tensors cannot run into each other
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def _payload_bytes(weights: Mapping[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in weights.values())


def _check_safetensors_size(path: str) -> None:
    """Compare the file size with what its header (and our metadata) says it holds.

    safetensors layout: 8-byte little-endian header length N, N bytes of JSON header, payload.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if size < 8 + header_len:
            raise CheckpointError(f"{path}: truncated: expected more than {8 + header_len} bytes, found {size}")
        try:
            header = json.loads(f.read(header_len))
            ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
            meta = header.get("__metadata__") or {}
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
            raise CheckpointError(f"{path}: corrupt safetensors header ({err})") from None
    payload = max(ends, default=0)
    if PAYLOAD_KEY in meta and meta[PAYLOAD_KEY] != str(payload):
        raise CheckpointError(
            f"{path}: corrupt: the header places {payload} bytes of tensors, the metadata records {meta[PAYLOAD_KEY]}"
        )
    expected = 8 + header_len + payload
    if size < expected:
        raise CheckpointError(f"{path}: truncated: expected {expected} bytes, found {size}")
    if size > expected:
        raise CheckpointError(f"{path}: {size - expected} unexpected bytes after the tensors: expected {expected} bytes, found {size}")


def _with_sorted_metadata(data: bytes) -> tuple[bytes, memoryview]:
    """Split safetensors bytes into a header with the metadata in key order, and the payload.

    safetensors writes its metadata map in a different order in every process, so equal inputs
    would give different files.
    """
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header so that the payload is 8-byte aligned
    return struct.pack("<Q", len(text)) + text, memoryview(data)[8 + header_len :]


def _read_safetensors(path: str) -> SSLCheckpoint:
    from safetensors import safe_open

    _check_safetensors_size(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            weights = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:  # safetensors raises its own error types for truncated/corrupt files
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: safetensors file is not an espnet_prune upstream (format={meta.get('format')!r}); "
            "for a Hugging Face model give its directory"
        )
    if DIGEST_KEY not in meta:
        logging.warning("%s: has no %s digest (written by an older espnet_prune); its integrity is not checked", path, DIGEST_KEY)
    elif content_digest(weights, meta) != meta[DIGEST_KEY]:
        raise CheckpointError(f"{path}: checksum mismatch: its contents changed after it was written (damaged or edited)")
    try:
        ckpt = SSLCheckpoint(
            model_type=meta["model_type"],
            task_cfg=json.loads(meta["task_cfg"]),
            model_cfg=json.loads(meta["model_cfg"]),
            weights=weights,
            dictionaries_symbols=json.loads(meta["dictionaries_symbols"]),
            pruned=json.loads(meta["pruned"]),
        )
        arch = ckpt.arch
    except (KeyError, json.JSONDecodeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad espnet_prune metadata ({err})") from None
    try:
        check_weights_match_arch(weights, arch)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    return ckpt


def expected_shapes(arch: UpstreamArch) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Shapes of the weights that ``arch`` decides (those :func:`apply_arch_` rebuilds), by name,
    each with the architecture fact it follows from (for error messages)."""
    shapes: dict[str, tuple[str, tuple[int, ...]]] = {}
    c_in = 1
    for i, (c_out, k) in enumerate(zip(arch.conv_channels, arch.conv_kernels)):
        shapes[f"feature_extractor.conv_layers.{i}.0.weight"] = (f"conv layer {i} has {c_out} channels", (c_out, c_in, k))
        c_in = c_out
    last = f"conv layer {len(arch.conv_channels) - 1} has {c_in} channels"
    shapes["layer_norm.weight"] = (last, (c_in,))
    if arch.has_feature_projection:
        shapes["post_extract_proj.weight"] = (last, (arch.encoder_dim, c_in))
    d = arch.encoder_dim
    for i, (heads, units, has_attention, has_ffn) in enumerate(zip(arch.heads, arch.ffn_units, arch.attention, arch.ffn)):
        prefix = f"encoder.layers.{i}."
        inner = heads * arch.head_dim if has_attention else 0
        what = f"Transformer layer {i} has {heads} heads of {arch.head_dim}" if has_attention else f"Transformer layer {i} has no attention"
        for proj in ("q_proj", "k_proj", "v_proj"):
            shapes[prefix + f"self_attn.{proj}.weight"] = (what, (inner, d))
            shapes[prefix + f"self_attn.{proj}.bias"] = (what, (inner,))
        shapes[prefix + "self_attn.out_proj.weight"] = (what, (d, inner))
        if arch.gru_rel_pos and has_attention:
            shapes[prefix + "self_attn.grep_a"] = (what, (1, heads, 1, 1))
        units = units if has_ffn else 0
        what = f"Transformer layer {i} has {units} FFN units" if has_ffn else f"Transformer layer {i} has no FFN"
        shapes[prefix + "fc1.weight"] = (what, (units, d))
        shapes[prefix + "fc1.bias"] = (what, (units,))
        shapes[prefix + "fc2.weight"] = (what, (d, units))
    return shapes


def check_weights_match_arch(
    weights: Mapping[str, torch.Tensor], arch: UpstreamArch, source_names: Optional[Mapping[str, str]] = None
) -> None:
    """ValueError naming the layer and the tensor where ``weights`` disagree with ``arch``.

    Checked before a model is built, so that a file whose recorded architecture is wrong fails
    with that, not with a size mismatch deep inside ``load_state_dict``. Tensors are named as in
    the file read (``source_names``, where that differs from ours).
    """
    names = source_names or {}
    for name, (what, shape) in expected_shapes(arch).items():
        if name not in weights:
            raise ValueError(f"architecture and weights disagree: {what}, but there is no tensor {names.get(name, name)}")
        found = tuple(weights[name].shape)
        if found != shape:
            raise ValueError(
                f"architecture and weights disagree: {what}, so {names.get(name, name)} should have shape {shape}, "
                f"but it has {found}"
            )
    for i, (has_attention, has_ffn) in enumerate(zip(arch.attention, arch.ffn)):
        for present, name, what in (
            (has_attention, f"encoder.layers.{i}.self_attn.out_proj.bias", "attention"),
            (has_ffn, f"encoder.layers.{i}.fc2.bias", "FFN"),
        ):
            if not present and name in weights:
                raise ValueError(f"architecture and weights disagree: Transformer layer {i} has no {what}, but there is a tensor {name}")


# Tensors of fairseq's pretraining heads, which the upstream does not use (S3PRL drops them too)
PRETRAINING_HEADS = ("quantizer.", "project_q.", "final_proj.", "target_glu.", "label_embs_concat")


def build_model(ckpt: SSLCheckpoint, source: str = "checkpoint", pretraining_heads: bool = False) -> nn.Module:
    """Construct the S3PRL model class of ``ckpt`` and load its weights; the pretraining heads are
    dropped unless ``pretraining_heads`` (to go on pretraining a dense checkpoint)."""
    from s3prl.upstream.utils import merge_with_parent

    if ckpt.model_type == "wav2vec2":
        from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

        model = Wav2Vec2Model(merge_with_parent(Wav2Vec2Config, ckpt.model_cfg))
    elif ckpt.model_type == "wavlm":
        from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

        model = WavLM(WavLMConfig(ckpt.model_cfg))
    else:
        from s3prl.upstream.hubert.hubert_model import HubertConfig, HubertModel, HubertPretrainingConfig

        model = HubertModel(
            merge_with_parent(HubertConfig, ckpt.model_cfg),
            merge_with_parent(HubertPretrainingConfig, ckpt.task_cfg),
            # without its label dictionaries (fairseq keeps them with the task) it has no label embeddings
            ckpt.dictionaries_symbols or [None],
        )
    if pretraining_heads and ckpt.pruned is not None:
        raise CheckpointError(f"{source}: a shrunk checkpoint has no pretraining heads")
    if not pretraining_heads and hasattr(model, "remove_pretraining_modules"):  # WavLM's has none
        model.remove_pretraining_modules()
    if ckpt.pruned is not None:
        apply_arch_(model, ckpt.arch)
    expected = model.state_dict()
    weights = {k: v for k, v in ckpt.weights.items() if k in expected or not k.startswith(PRETRAINING_HEADS)}
    left_out = sorted({k.split(".")[0] for k in set(ckpt.weights) - set(weights)})
    if left_out:
        logging.info("%s: left out the pretraining heads %s: the upstream does not use them", source, left_out)
    names = ckpt.source_names or {}
    unexpected = sorted(names.get(k, k) for k in set(weights) - set(expected))
    if unexpected:
        raise CheckpointError(f"{source}: tensors that a {ckpt.model_type} model of this config does not have: {unexpected}")
    for key, value in expected.items():
        if key not in weights:
            raise CheckpointError(f"{source}: the config needs a tensor {names.get(key, key)}, which the weights lack")
        if weights[key].shape != value.shape:
            raise CheckpointError(
                f"{source}: config and weights disagree: {names.get(key, key)} has shape {tuple(weights[key].shape)}, "
                f"the config gives {tuple(value.shape)}"
            )
    model.load_state_dict(weights)
    return model


def save_checkpoint(model: nn.Module, info: SSLCheckpoint, arch: UpstreamArch, path: str | os.PathLike) -> None:
    """Write ``model``'s weights with ``info``'s configs and ``arch`` as one safetensors file, atomically.

    The same model and configs give the same bytes (re-running a tool reproduces its output).
    """
    from safetensors.torch import save

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
        PAYLOAD_KEY: str(_payload_bytes(weights)),
    }
    meta[DIGEST_KEY] = content_digest(weights, meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        header, payload = _with_sorted_metadata(save(weights, metadata=meta))
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the data does
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
