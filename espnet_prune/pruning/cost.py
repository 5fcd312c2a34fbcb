"""Exact and expected cost (parameters, multiply-accumulates) of a wav2vec2/HuBERT/WavLM frontend.

One pure function, :func:`upstream_cost`, counts everything from unit counts. Given the integer
counts of an architecture it is the exact count of that dense or shrunk model; given the
expected counts from gate probabilities (floats or differentiable tensors) it is the expected
cost that the pruning objective constrains. Counting conventions:

* MACs: convolutions, linear layers, and the attention score (QK^T) and context (AV) products;
  norms, activations and softmax are not counted (they are not multiply-accumulates of weights).
  WavLM's gated relative position unit counts its linear layer (``head_dim -> 8`` per head and
  frame) and the gate's product with the T x T bias of each head; looking up and adding the bias
  are not counted. (torch's FlopCounterMode counts matrix products only, so it sees the same
  minus that T x T product.)
* Parameters: everything the frontend uses after loading (conv, norms, projection, positional
  conv, Transformer layers); the pretraining-only heads (quantiser, ``final_proj``,
  ``label_embs_concat``, ``mask_emb``) are not counted. WavLM's relative position bias table
  (buckets x dense heads, in layer 0, shared by every layer) stays whole whatever is pruned.
* "cnn" is the conv feature extractor; "transformer" is everything after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

from espnet_prune.pruning.arch import UpstreamArch

SAMPLE_RATE = 16000
Number = Union[int, float, torch.Tensor]


@dataclass
class UnitCounts:
    """How many units of each kind are present: ints (a real model) or expectations (gates)."""

    conv_channels: Sequence[Number]
    heads: Sequence[Number]
    ffn_units: Sequence[Number]
    attention: Sequence[Number]
    ffn: Sequence[Number]

    @classmethod
    def of(cls, arch: UpstreamArch) -> "UnitCounts":
        return cls(
            conv_channels=list(arch.conv_channels),
            heads=list(arch.heads),
            ffn_units=list(arch.ffn_units),
            attention=[float(a) for a in arch.attention],
            ffn=[float(f) for f in arch.ffn],
        )


@dataclass
class Cost:
    """Parameters and MACs, split into the CNN and the rest ("transformer")."""

    cnn_params: Number
    transformer_params: Number
    cnn_macs: Number
    transformer_macs: Number

    @property
    def params(self) -> Number:
        return self.cnn_params + self.transformer_params

    @property
    def macs(self) -> Number:
        return self.cnn_macs + self.transformer_macs

    def to_dict(self) -> dict:
        def f(x: Number) -> int | float:
            x = float(x.detach()) if isinstance(x, torch.Tensor) else float(x)
            return int(round(x)) if abs(x - round(x)) < 1e-6 else x

        return {
            "params": {"cnn": f(self.cnn_params), "transformer": f(self.transformer_params), "total": f(self.params)},
            "macs": {"cnn": f(self.cnn_macs), "transformer": f(self.transformer_macs), "total": f(self.macs)},
        }


def conv_output_lengths(num_samples: int, kernels: Sequence[int], strides: Sequence[int]) -> list[int]:
    """Frames after each conv layer (no padding): T_i = floor((T_{i-1} - k_i) / s_i) + 1."""
    lengths = []
    t = num_samples
    for k, s in zip(kernels, strides):
        t = (t - k) // s + 1
        if t < 1:
            raise ValueError(f"input of {num_samples} samples is too short for the conv feature extractor")
        lengths.append(t)
    return lengths


def upstream_cost(arch: UpstreamArch, seconds: float, units: UnitCounts | None = None) -> Cost:
    """Cost of the frontend on one utterance of ``seconds`` seconds at 16 kHz.

    ``units`` defaults to the architecture's own counts (the exact cost of that model).
    """
    units = units or UnitCounts.of(arch)
    lengths = conv_output_lengths(round(seconds * SAMPLE_RATE), arch.conv_kernels, arch.conv_strides)

    cnn_params: Number = 0
    cnn_macs: Number = 0
    c_in: Number = 1
    for i, (c_out, k, t) in enumerate(zip(units.conv_channels, arch.conv_kernels, lengths)):
        has_norm = arch.extractor_mode == "layer_norm" or i == 0
        cnn_params = cnn_params + c_in * c_out * k + c_out * (int(arch.conv_bias) + 2 * int(has_norm))
        cnn_macs = cnn_macs + t * k * c_in * c_out
        c_in = c_out

    d, dh, t = arch.encoder_dim, arch.head_dim, lengths[-1]
    c_last = units.conv_channels[-1]
    trf_params: Number = 2 * c_last + 2 * d  # feature layer norm, encoder layer norm
    trf_macs: Number = 0
    if arch.has_feature_projection:
        trf_params = trf_params + c_last * d + d
        trf_macs = trf_macs + t * c_last * d
    k_pos, g = arch.pos_conv_kernel, arch.pos_conv_groups
    trf_params = trf_params + d * (d // g) * k_pos + k_pos + d  # weight_v, weight_g (weight norm over dim 2), bias
    trf_params = trf_params + arch.rel_pos_buckets * arch.rel_pos_heads
    # padding k//2 on both sides gives T+1 frames for an even kernel; SamePad drops the extra one after the conv.
    trf_macs = trf_macs + (t + 2 * (k_pos // 2) - k_pos + 1) * d * (d // g) * k_pos
    t = -(-t // arch.seq_len_multiple) * arch.seq_len_multiple  # the layers see the padded sequence
    for h, f, a, z in zip(units.heads, units.ffn_units, units.attention, units.ffn):
        inner = h * dh
        trf_params = trf_params + 4 * d  # the two layer norms stay whatever is pruned
        trf_params = trf_params + a * (3 * (d * inner + inner) + inner * d + d)
        trf_macs = trf_macs + a * (4 * t * d * inner + 2 * t * t * inner)
        if arch.gru_rel_pos:  # grep_linear (dh -> 8, shared by the heads) and grep_a (one per head)
            trf_params = trf_params + a * (dh * 8 + 8 + h)
            if arch.rel_pos_buckets:
                trf_macs = trf_macs + a * (t * h * dh * 8 + t * t * h)
        trf_params = trf_params + z * (2 * d * f + f + d)
        trf_macs = trf_macs + z * (2 * t * d * f)
    return Cost(cnn_params, trf_params, cnn_macs, trf_macs)
