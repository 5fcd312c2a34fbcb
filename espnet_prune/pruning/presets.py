"""Random-init wav2vec2/HuBERT/WavLM checkpoints in the formats S3PRL reads.

No pretrained weights can be downloaded here, so tests, benchmarks and the synthetic recipes
build their upstreams from these presets; the files are exactly what S3PRL's
``wav2vec2_local`` / ``hubert_local`` (its converted format) and ``wavlm_local`` (microsoft/unilm's
WavLM format) loaders read.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

CONV_BASE = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2"

PRESETS: dict[str, dict[str, Any]] = {
    # wav2vec2-base / HuBERT-base (wav2vec_small.pt, hubert_base_ls960.pt)
    "base": dict(
        conv_feature_layers=CONV_BASE,
        encoder_layers=12,
        encoder_embed_dim=768,
        encoder_ffn_embed_dim=3072,
        encoder_attention_heads=12,
        conv_pos=128,
        conv_pos_groups=16,
        final_dim=256,
    ),
    # the synthetic recipes' stand-in for a pretrained model: trainable from scratch on 2 CPU cores
    # in minutes (layer-norm extractor, pre-LN, no dropout: the fairseq defaults do not learn here);
    # its CNN has ~30 % of the MACs at 10 s, as wav2vec2-base's has ~1/3
    "small": dict(
        conv_feature_layers="[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2",
        encoder_layers=4,
        encoder_embed_dim=192,
        encoder_ffn_embed_dim=384,
        encoder_attention_heads=4,
        conv_pos=32,
        conv_pos_groups=8,
        final_dim=64,
        extractor_mode="layer_norm",
        layer_norm_first=True,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        dropout_input=0.0,
        dropout_features=0.0,
        encoder_layerdrop=0.0,
    ),
    # for tests: runs in milliseconds
    "tiny": dict(
        conv_feature_layers="[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2",
        encoder_layers=2,
        encoder_embed_dim=96,
        encoder_ffn_embed_dim=192,
        encoder_attention_heads=4,
        conv_pos=16,
        conv_pos_groups=4,
        final_dim=32,
    ),
}
# the self-supervised stand-in (HuBERT masked prediction, espnet_prune.tasks.hubert): "small"
# with 6 layers and a 4x FFN, so that pruning has redundancy to remove, conditioned the same
# way; masks of 5 frames (100 ms) since the synthetic utterances are 2-4 s long
PRESETS["ssl"] = {**PRESETS["small"], "encoder_layers": 6, "encoder_ffn_embed_dim": 768, "mask_length": 5, "mask_prob": 0.8}
# WavLM adds to a preset the gated relative position bias of WavLM Base+ (WavLM-Base+.pt)
WAVLM_REL_POS = dict(relative_position_embedding=True, num_buckets=320, max_distance=800, gru_rel_pos=True)


def make_checkpoint(
    arch: str, preset: str, seed: int, num_classes: int | None = None, **overrides: Any
) -> dict[str, Any]:
    """A random-init dense checkpoint dict for ``arch`` in {wav2vec2, hubert, wavlm}: S3PRL's converted
    format, or unilm's ``{"cfg", "model"}`` for WavLM.

    ``num_classes`` (HuBERT only) sizes the pretraining head: the number of k-means clusters its
    labels take (default: 504 for "base", as hubert_base_ls960, 16 otherwise).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    cfg = {**PRESETS[preset], **overrides}
    torch.manual_seed(seed)
    if num_classes is not None and (arch != "hubert" or num_classes < 1):
        raise ValueError(f"num_classes={num_classes}: only a HuBERT checkpoint has classes (at least 1)")
    if arch == "wav2vec2":
        from s3prl.upstream.wav2vec2.wav2vec2_model import AudioPretrainingConfig, Wav2Vec2Config, Wav2Vec2Model

        fields = {f.name for f in dataclasses.fields(Wav2Vec2Config)}
        _check_overrides(cfg, fields)
        model_cfg = dataclasses.asdict(Wav2Vec2Config(quantize_targets=True, latent_vars=32, **cfg))
        model = Wav2Vec2Model(Wav2Vec2Config(**model_cfg))
        task_cfg = dataclasses.asdict(AudioPretrainingConfig())
        ckpt = {"task_cfg": task_cfg, "model_cfg": {"_name": "wav2vec2", **model_cfg}}
    elif arch == "hubert":
        from s3prl.upstream.hubert.hubert_model import HubertConfig, HubertModel, HubertPretrainingConfig

        fields = {f.name for f in dataclasses.fields(HubertConfig)}
        _check_overrides(cfg, fields)
        model_cfg = dataclasses.asdict(HubertConfig(label_rate=50, **cfg))
        task_cfg = dataclasses.asdict(HubertPretrainingConfig(label_rate=50))
        if num_classes is None:
            num_classes = 504 if preset == "base" else 16
        symbols = [[str(i) for i in range(num_classes)]]
        model = HubertModel(HubertConfig(**model_cfg), HubertPretrainingConfig(**task_cfg), symbols)
        ckpt = {"task_cfg": task_cfg, "model_cfg": {"_name": "hubert", **model_cfg}, "dictionaries_symbols": symbols}
    elif arch == "wavlm":
        from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

        fields = set(vars(WavLMConfig()))
        cfg = {**WAVLM_REL_POS, **{k: v for k, v in PRESETS[preset].items() if k in fields}, **overrides}
        _check_overrides(cfg, fields)
        model_cfg = vars(WavLMConfig(cfg))
        return {"cfg": dict(model_cfg), "model": WavLM(WavLMConfig(model_cfg)).state_dict()}
    else:
        raise ValueError(f"unknown arch {arch!r}; choose wav2vec2, hubert or wavlm")
    ckpt["model_weight"] = model.state_dict()
    return ckpt


def _check_overrides(cfg: dict, fields: set[str]) -> None:
    unknown = sorted(set(cfg) - fields)
    if unknown:
        raise ValueError(f"unknown model config keys {unknown}")
