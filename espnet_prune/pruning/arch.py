"""The per-layer architecture of a (possibly pruned) wav2vec2 / HuBERT / WavLM upstream.

A dense upstream is fully described by its S3PRL/fairseq ``model_cfg``; a pruned one adds, per
layer, what survived: conv channels, attention heads (and which of the original heads they are),
FFN units, and whether the attention and FFN sublayers are still there. That record is small,
JSON-serialisable, and is what a shrunk checkpoint stores next to its weights.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

MODEL_TYPES = ("wav2vec2", "hubert", "wavlm")
PRUNED_KEYS = ("conv_channels", "heads", "ffn_units", "attention", "ffn", "head_index")


def parse_conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """Parse fairseq's ``conv_feature_layers`` string, e.g. ``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``.

    fairseq and S3PRL ``eval()`` it; here only list/tuple literals of ints, ``+`` and ``*`` are
    accepted, so a config file cannot run code.
    """

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"conv_feature_layers {spec!r}: only lists of (dim, kernel, stride) tuples, + and * are allowed")

    try:
        layers = value(ast.parse(spec, mode="eval").body)
    except SyntaxError:
        raise ValueError(f"conv_feature_layers {spec!r} is not a valid expression") from None
    if not (isinstance(layers, list) and layers and all(isinstance(t, tuple) and len(t) == 3 for t in layers)):
        raise ValueError(f"conv_feature_layers {spec!r} must be a non-empty list of (dim, kernel, stride)")
    return layers


@dataclass(frozen=True)
class UpstreamArch:
    """Architecture of the frontend part of a wav2vec2/HuBERT/WavLM model (no pretraining heads).

    Lists indexed by conv layer (``conv_*``) or by Transformer layer (``heads`` ...).
    ``attention[l]`` / ``ffn[l]`` say whether that sublayer still exists; a sublayer that exists
    with zero heads / units only adds its output bias. ``head_index[l]`` says which of the dense
    model's heads layer ``l`` kept: WavLM's relative position bias (one table of ``rel_pos_heads``
    columns, in layer 0, shared by all layers) and its gated relative position unit (which reads
    head ``h``'s slice of the layer input) are addressed by the original head.
    """

    model_type: str
    conv_channels: tuple[int, ...]
    conv_kernels: tuple[int, ...]
    conv_strides: tuple[int, ...]
    conv_bias: bool
    extractor_mode: str
    has_feature_projection: bool
    encoder_dim: int
    head_dim: int
    pos_conv_kernel: int
    pos_conv_groups: int
    layer_norm_first: bool
    seq_len_multiple: int
    heads: tuple[int, ...]
    ffn_units: tuple[int, ...]
    attention: tuple[bool, ...] = field(default=())
    ffn: tuple[bool, ...] = field(default=())
    head_index: tuple[tuple[int, ...], ...] = field(default=())  # () : layer l kept heads 0 .. heads[l]-1
    # WavLM: buckets of the relative position bias (0: none), its max distance, the dense head
    # count (columns of the bias table) and whether a gated relative position unit scales it
    rel_pos_buckets: int = 0
    rel_pos_max_distance: int = 0
    rel_pos_heads: int = 0
    gru_rel_pos: bool = False

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        n_conv = len(self.conv_channels)
        if not (len(self.conv_kernels) == len(self.conv_strides) == n_conv > 0):
            raise ValueError("conv_channels, conv_kernels and conv_strides must have one entry per conv layer")
        if any(c < 1 for c in self.conv_channels):
            raise ValueError(f"every conv layer needs at least one channel: {self.conv_channels}")
        n_layers = len(self.heads)
        if not self.attention:
            object.__setattr__(self, "attention", (True,) * n_layers)
        if not self.ffn:
            object.__setattr__(self, "ffn", (True,) * n_layers)
        if not (len(self.ffn_units) == len(self.attention) == len(self.ffn) == n_layers):
            raise ValueError("heads, ffn_units, attention and ffn must have one entry per Transformer layer")
        if self.head_index and len(self.head_index) != n_layers:
            raise ValueError("head_index must have one entry per Transformer layer")
        for layer, (h, index) in enumerate(zip(self.heads, self.head_index)):  # none: the first heads[l]
            if len(index) != h or list(index) != sorted(set(index)) or any(i < 0 for i in index):
                raise ValueError(f"head_index of layer {layer} must be {h} increasing head numbers, got {list(index)}")
        if self.extractor_mode not in ("default", "layer_norm"):
            raise ValueError(f"unsupported extractor_mode {self.extractor_mode!r}")

    @property
    def num_layers(self) -> int:
        return len(self.heads)

    def kept_heads(self, layer: int) -> tuple[int, ...]:
        """The dense model's numbers of the heads ``layer`` has."""
        return self.head_index[layer] if self.head_index else tuple(range(self.heads[layer]))

    @classmethod
    def from_model_cfg(
        cls, model_type: str, model_cfg: Mapping[str, Any], pruned: Mapping[str, Any] | None = None
    ) -> "UpstreamArch":
        """Build from an S3PRL/fairseq ``model_cfg`` dict (dense), optionally overriding what was pruned."""
        try:
            conv_layers = parse_conv_layers(str(model_cfg["conv_feature_layers"]))
            dim = int(model_cfg["encoder_embed_dim"])
            n_heads = int(model_cfg["encoder_attention_heads"])
            n_layers = int(model_cfg["encoder_layers"])
            ffn_dim = int(model_cfg["encoder_ffn_embed_dim"])
        except KeyError as err:
            raise ValueError(f"model_cfg lacks the key {err.args[0]!r}: not a wav2vec2/HuBERT/WavLM config") from None
        if int(model_cfg.get("pos_conv_depth", 1)) != 1:
            raise ValueError("pos_conv_depth > 1 (data2vec-style positional convs) is not supported")
        if str(model_cfg.get("layer_type", "transformer")) != "transformer":
            raise ValueError(f"layer_type {model_cfg.get('layer_type')!r} is not supported (only 'transformer')")
        if str(model_cfg.get("activation_fn", "gelu")) != "gelu":
            raise ValueError(f"activation_fn {model_cfg.get('activation_fn')!r} is not supported (only 'gelu')")
        wavlm = model_type == "wavlm"
        rel_pos = wavlm and bool(model_cfg.get("relative_position_embedding", False))
        dense = dict(
            conv_channels=tuple(int(c[0]) for c in conv_layers),
            heads=(n_heads,) * n_layers,
            ffn_units=(ffn_dim,) * n_layers,
            attention=(True,) * n_layers,
            ffn=(True,) * n_layers,
        )
        pruned = dict(pruned or {})
        unknown = set(pruned) - set(PRUNED_KEYS)
        if unknown:
            raise ValueError(f"unknown pruned-architecture keys {sorted(unknown)}; expected {PRUNED_KEYS}")
        if "head_index" in pruned:
            index = tuple(tuple(int(i) for i in layer) for layer in pruned.pop("head_index"))
            if len(index) != n_layers or any(i >= n_heads for layer in index for i in layer):
                raise ValueError(f"pruned 'head_index' = {[list(i) for i in index]} does not fit {n_layers} layers of {n_heads} heads")
            dense["head_index"] = index
        for key, value in pruned.items():
            value = tuple(value)
            if len(value) != len(dense[key]):
                raise ValueError(f"pruned {key!r} has {len(value)} entries, the model has {len(dense[key])}")
            if any(not 0 <= v <= d for v, d in zip(value, dense[key])):
                raise ValueError(f"pruned {key!r} = {list(value)} exceeds the dense {list(dense[key])}")
            dense[key] = tuple(bool(v) for v in value) if key in ("attention", "ffn") else tuple(int(v) for v in value)
        return cls(
            model_type=model_type,
            conv_kernels=tuple(int(c[1]) for c in conv_layers),
            conv_strides=tuple(int(c[2]) for c in conv_layers),
            conv_bias=bool(model_cfg.get("conv_bias", False)),
            extractor_mode=str(model_cfg.get("extractor_mode", "default")),
            has_feature_projection=int(conv_layers[-1][0]) != dim,
            encoder_dim=dim,
            head_dim=dim // n_heads,
            pos_conv_kernel=int(model_cfg.get("conv_pos", 128)),
            pos_conv_groups=int(model_cfg.get("conv_pos_groups", 16)),
            layer_norm_first=bool(model_cfg.get("layer_norm_first", False)),
            # fairseq pads the Transformer input to a multiple of this (default 2); WavLM does not pad
            seq_len_multiple=1 if wavlm else int(model_cfg.get("required_seq_len_multiple", 2)),
            rel_pos_buckets=int(model_cfg.get("num_buckets", 320)) if rel_pos else 0,
            rel_pos_max_distance=int(model_cfg.get("max_distance", 1280)) if rel_pos else 0,
            rel_pos_heads=n_heads if rel_pos else 0,
            gru_rel_pos=wavlm and bool(model_cfg.get("gru_rel_pos", False)),
            **dense,
        )

    def pruned_dict(self) -> dict[str, list]:
        """What a shrunk checkpoint records: the per-layer survivors."""
        pruned = {key: list(getattr(self, key)) for key in PRUNED_KEYS if key != "head_index"}
        if self.head_index:  # only WavLM needs to know which heads (see the class docstring)
            pruned["head_index"] = [list(index) for index in self.head_index]
        return pruned

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
