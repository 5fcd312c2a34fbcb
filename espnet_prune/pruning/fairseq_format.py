"""fairseq wav2vec2/HuBERT pretraining checkpoints, read without fairseq.

fairseq (``checkpoint_utils.save_state``) writes ``torch.save`` of a dict::

    {"args": argparse.Namespace | None,   # fairseq <= 0.10 (wav2vec_small.pt): every option, flat;
                                          #   the model is args.arch, the task args.task
     "cfg": DictConfig | dict | None,      # fairseq >= 0.10.2 with hydra (hubert_base_ls960.pt):
                                          #   {"model": {"_name": ..., ...}, "task": {"_name": ..., ...}, ...}
     "model": state_dict,                  # the same tensor names as S3PRL's copy of the model
     "optimizer_history": [...], "extra_state": {...}, "last_optimizer_state": ..., "criterion": ...}

So a pickle of such a file needs, besides tensors and containers, ``argparse.Namespace`` and
omegaconf's config classes; :data:`SAFE_GLOBALS` allows exactly those to ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import typing
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.base import ContainerMetadata, Metadata
from omegaconf.nodes import AnyNode, BooleanNode, FloatNode, IntegerNode, StringNode

# fairseq has no WavLM: its checkpoints come from microsoft/unilm in their own layout
FAIRSEQ_MODELS = ("wav2vec2", "hubert")

# What fairseq checkpoints pickle besides tensors: the old layout's Namespace; the new layout's
# DictConfig with its nodes and metadata (which reference typing.Any and builtin types).
SAFE_GLOBALS: list[Any] = [
    argparse.Namespace,
    DictConfig,
    ListConfig,
    ContainerMetadata,
    Metadata,
    AnyNode,
    BooleanNode,
    FloatNode,
    IntegerNode,
    StringNode,
    typing.Any,
    collections.defaultdict,
    dict,
    list,
    int,
    float,
    str,
    bool,
]


def is_fairseq_state(state: dict) -> bool:
    return "model" in state and ("cfg" in state or "args" in state)


def is_wavlm_state(state: dict) -> bool:
    """microsoft/unilm's WavLM checkpoint (``WavLM-Base+.pt``), which S3PRL's ``wavlm_local`` reads:
    ``{"cfg": {every WavLMConfig field, flat}, "model": state_dict}``."""
    cfg = state.get("cfg")
    return "model" in state and isinstance(cfg, dict) and "relative_position_embedding" in cfg and "model" not in cfg


def _model_config_fields(model_type: str) -> set[str]:
    if model_type == "wav2vec2":
        from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config as config
    else:
        from s3prl.upstream.hubert.hubert_model import HubertConfig as config
    return {f.name for f in dataclasses.fields(config)}


def fairseq_configs(state: dict, path: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(model_type, task_cfg, model_cfg)`` of a fairseq checkpoint dict, in S3PRL's form.

    Raises ValueError naming the model when it is not a pretrained wav2vec2/HuBERT.
    """
    if state.get("cfg") is not None:
        cfg = state["cfg"]
        if isinstance(cfg, (DictConfig, ListConfig)):
            try:
                cfg = OmegaConf.to_container(cfg, resolve=True)
            except Exception as err:  # omegaconf's own errors, e.g. an interpolation to a missing key
                raise ValueError(f"{path}: fairseq config cannot be resolved ({err})") from None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
            raise ValueError(f"{path}: fairseq checkpoint whose 'cfg' has no 'model' section")
        model_cfg, task_cfg = dict(cfg["model"]), dict(cfg.get("task") or {})
        name, where = model_cfg.get("_name"), "cfg.model._name"
    elif isinstance(state.get("args"), argparse.Namespace):
        args = vars(state["args"])
        model_cfg, task_cfg = dict(args), dict(args)  # one flat namespace holds both
        name, where = args.get("arch"), "args.arch"
    else:
        raise ValueError(f"{path}: fairseq checkpoint with neither 'cfg' nor 'args'")
    if name not in FAIRSEQ_MODELS:
        raise ValueError(
            f"{path}: fairseq model {name!r} ({where}) is not supported; supported are the pretrained "
            f"models {list(FAIRSEQ_MODELS)} (fine-tuned ones such as wav2vec_ctc/hubert_ctc are not)"
        )
    # S3PRL's configs are fairseq's dataclasses: keep their fields (an old Namespace holds every option)
    fields = _model_config_fields(name)
    model_cfg = {"_name": name, **{k: v for k, v in model_cfg.items() if k in fields}}
    task_cfg = {k: task_cfg[k] for k in ("normalize", "sample_rate", "label_rate") if k in task_cfg}
    return name, task_cfg, model_cfg
