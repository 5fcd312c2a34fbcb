"""Hugging Face transformers wav2vec2/HuBERT/WavLM directories, read as S3PRL's models.

A directory written by ``save_pretrained`` (or downloaded from the hub) holds ``config.json``,
the weights (``model.safetensors``, ``pytorch_model.bin``, or shards listed in a
``*.index.json``) and usually ``preprocessor_config.json``. transformers' modules compute what
fairseq's (and unilm's WavLM) do under other names, so the config maps onto fairseq's
``model_cfg`` and each tensor onto its fairseq name (:data:`RENAMES`); task heads outside the base
model (CTC ``lm_head``, ``quantizer``, ``project_q``, ``project_hid``) are left out.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

import torch

MODEL_TYPES = ("wav2vec2", "hubert", "wavlm")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

# transformers name (within the base model) -> fairseq/S3PRL name; {mode} is filled per extractor mode
RENAMES: list[tuple[str, str]] = [
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_extractor.conv_layers.\1.{norm}."),
    (r"feature_projection\.layer_norm\.", "layer_norm."),
    (r"feature_projection\.projection\.", "post_extract_proj."),
    (r"masked_spec_embed", "mask_emb"),
    (r"encoder\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    # weight norm: torch's old hook (weight_g/_v) or its parametrization (original0/1), as saved
    (r"encoder\.pos_conv_embed\.conv\.(weight_g|parametrizations\.weight\.original0)", "encoder.pos_conv.0.weight_g"),
    (r"encoder\.pos_conv_embed\.conv\.(weight_v|parametrizations\.weight\.original1)", "encoder.pos_conv.0.weight_v"),
    (r"encoder\.layer_norm\.", "encoder.layer_norm."),
    # WavLM's gated relative position bias
    (r"encoder\.layers\.(\d+)\.attention\.rel_attn_embed\.", r"encoder.layers.\1.self_attn.relative_attention_bias."),
    (r"encoder\.layers\.(\d+)\.attention\.gru_rel_pos_linear\.", r"encoder.layers.\1.self_attn.grep_linear."),
    (r"encoder\.layers\.(\d+)\.attention\.gru_rel_pos_const", r"encoder.layers.\1.self_attn.grep_a"),
    (r"encoder\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
    (r"encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
]


def hf_directory(path: str) -> str:
    """The model directory of ``path`` (the directory itself or its ``config.json``)."""
    if os.path.basename(path) == "config.json":
        return os.path.dirname(path) or "."
    return path


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return value


def _config_value(config: dict[str, Any], key: str, path: str) -> Any:
    if key not in config:
        raise ValueError(f"{path}: lacks the key {key!r}")
    return config[key]


def hf_configs(config: dict[str, Any], normalize: bool, path: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(model_type, task_cfg, model_cfg)`` in fairseq's form from a transformers ``config.json``."""
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{path}: model_type {model_type!r} is not supported; supported are {list(MODEL_TYPES)}")

    def get(key: str) -> Any:
        return _config_value(config, key, path)

    norm = get("feat_extract_norm")
    if norm not in ("group", "layer"):
        raise ValueError(f"{path}: feat_extract_norm {norm!r} is not supported (group or layer)")
    # fairseq's layers have no other choice of these; a config that differs would compute something else
    for key, wanted in (
        ("feat_extract_activation", "gelu"),
        ("hidden_act", "gelu"),
        ("layer_norm_eps", 1e-5),
        ("add_adapter", False),
        ("conv_pos_batch_norm", False),
        ("feat_proj_layer_norm", True),
    ):
        if config.get(key, wanted) != wanted:
            raise ValueError(f"{path}: {key} = {config[key]!r} is not supported (fairseq's models have {wanted!r})")
    conv = list(zip(get("conv_dim"), get("conv_kernel"), get("conv_stride")))
    dim = int(get("hidden_size"))
    if int(conv[-1][0]) == dim:
        # transformers always projects the CNN output; fairseq only when the widths differ
        raise ValueError(f"{path}: conv_dim[-1] == hidden_size ({dim}) is not supported")
    model_cfg = {
        "_name": model_type,
        "extractor_mode": {"group": "default", "layer": "layer_norm"}[norm],
        "conv_feature_layers": repr([tuple(int(v) for v in layer) for layer in conv]),
        "conv_bias": bool(get("conv_bias")),
        "encoder_layers": int(get("num_hidden_layers")),
        "encoder_embed_dim": dim,
        "encoder_ffn_embed_dim": int(get("intermediate_size")),
        "encoder_attention_heads": int(get("num_attention_heads")),
        "conv_pos": int(get("num_conv_pos_embeddings")),
        "conv_pos_groups": int(get("num_conv_pos_embedding_groups")),
        "layer_norm_first": bool(get("do_stable_layer_norm")),
        "dropout": float(config.get("hidden_dropout", 0.1)),
        "attention_dropout": float(config.get("attention_dropout", 0.1)),
        "activation_dropout": float(config.get("activation_dropout", 0.0)),
        "dropout_input": float(config.get("feat_proj_dropout", 0.0)),
        "encoder_layerdrop": float(config.get("layerdrop", 0.0)),
    }
    task_cfg: dict[str, Any] = {"normalize": normalize, "sample_rate": 16000}
    if model_type == "wavlm":
        # transformers' WavLM always has the gated relative position bias; unilm's config names
        model_cfg.update(
            relative_position_embedding=True,
            num_buckets=int(get("num_buckets")),
            max_distance=int(get("max_bucket_distance")),
            gru_rel_pos=True,
            normalize=normalize,
        )
    if model_type == "hubert":
        # HuBERT's config needs a label rate; it only sizes the pretraining targets, which are left out
        model_cfg["label_rate"] = task_cfg["label_rate"] = 50
    return model_type, task_cfg, model_cfg


def _load_file(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise ValueError(f"{path}: weights file not found")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors and torch raise many types for damaged files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: cannot be read as a weights file, truncated or damaged? ({reason})") from None


def read_hf_weights(directory: str) -> dict[str, torch.Tensor]:
    """All tensors of a transformers directory: one weights file, or the shards its index lists."""
    for name in WEIGHT_FILES:
        index = os.path.join(directory, name + ".index.json")
        if os.path.isfile(index):
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ValueError(f"{index}: has no 'weight_map'")
            weights: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                weights.update(_load_file(os.path.join(directory, shard)))
            missing = sorted(set(weight_map) - set(weights))
            if missing:
                raise ValueError(f"{index}: lists tensors that its shards lack, e.g. {missing[0]}")
            return weights
        if os.path.isfile(os.path.join(directory, name)):
            return _load_file(os.path.join(directory, name))
    raise ValueError(f"{directory}: no weights file ({' or '.join(WEIGHT_FILES)}, or a sharded *.index.json)")


def rename_hf_weights(
    weights: dict[str, torch.Tensor], model_type: str, model_cfg: dict[str, Any], path: str
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """``(weights under fairseq names, fairseq name -> transformers name, left-out head names)``.

    The base model's tensors are prefixed ``<model_type>.`` in task models (``Wav2Vec2ForCTC``)
    and not in the bare ``Wav2Vec2Model``; everything outside it is a task head.
    """
    prefix = model_type + "."
    nested = any(k.startswith(prefix) for k in weights)
    norm = "2.1" if model_cfg["extractor_mode"] == "layer_norm" else "2"
    renamed: dict[str, torch.Tensor] = {}
    names: dict[str, str] = {}
    heads: list[str] = []
    for key, tensor in weights.items():
        if nested and not key.startswith(prefix):
            heads.append(key)
            continue
        inner = key[len(prefix):] if nested else key
        for pattern, target in RENAMES:
            new, count = re.subn("^" + pattern, target.replace("{norm}", norm), inner)
            if count:
                break
        else:
            raise ValueError(f"{path}: unexpected tensor {key} in a {model_type} model")
        renamed[new] = tensor
        names[new] = key
    if "mask_emb" not in renamed:
        # transformers omits it without time masking; fairseq's model always has the parameter,
        # which only masked pretraining uses (the upstream never masks)
        renamed["mask_emb"] = torch.zeros(int(model_cfg["encoder_embed_dim"]))
    return renamed, names, heads


def read_hf_checkpoint(path: str) -> tuple[str, dict, dict, dict[str, torch.Tensor], dict[str, str]]:
    """``(model_type, task_cfg, model_cfg, weights, fairseq name -> transformers name)`` of a
    transformers directory (or its ``config.json``). Logs the task heads it leaves out."""
    directory = hf_directory(path)
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        raise ValueError(f"{directory}: no config.json (not a Hugging Face model directory)")
    config = _read_json(config_path)
    preprocessor = os.path.join(directory, "preprocessor_config.json")
    if os.path.isfile(preprocessor):
        normalize = bool(_read_json(preprocessor).get("do_normalize", False))
    else:
        logging.warning("%s: no preprocessor_config.json; the waveform is not normalised", directory)
        normalize = False
    model_type, task_cfg, model_cfg = hf_configs(config, normalize, config_path)
    weights, names, heads = rename_hf_weights(read_hf_weights(directory), model_type, model_cfg, directory)
    if heads:
        kinds = sorted({h.split(".")[0] for h in heads})
        logging.info("%s: left out the task heads %s (%d tensors): the upstream is the base model", directory, kinds, len(heads))
    return model_type, task_cfg, model_cfg, weights, names
