"""Modules that take the place of S3PRL's own inside a wav2vec2/HuBERT model.

Each keeps the parameters (and so the state-dict keys) of the module it replaces and only adds
what pruning needs: a per-layer number of heads, masks from gates, layer norms whose statistics
ignore pruned channels. Gates are owned by :class:`~espnet_prune.pruning.plugin.UpstreamGates`;
a module only keeps an unregistered reference, so each gate is saved once.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from espnet_prune.pruning.gates import HardConcreteGate


def _set_gate(module: nn.Module, name: str, gate: Optional[HardConcreteGate]) -> None:
    # object.__setattr__ bypasses nn.Module registration: the gate belongs to UpstreamGates.
    object.__setattr__(module, name, gate)


def _mask(gate: Optional[HardConcreteGate], like: torch.Tensor) -> Optional[torch.Tensor]:
    if gate is None:
        return None
    if gate.mask is None:
        raise RuntimeError("gate mask not drawn: gates are resampled by a hook on the feature extractor")
    return gate.mask.to(like.dtype)


def channel_layer_norm(x: torch.Tensor, norm: nn.LayerNorm, keep: Optional[torch.Tensor]) -> torch.Tensor:
    """LayerNorm over the last dim in float32, with statistics over the ``keep`` channels only.

    A pruned channel must not move the mean and variance of the others, or the shrunk model
    (which no longer has it) would compute different statistics.
    """
    xf = x.float()
    weight = norm.weight.float() if norm.weight is not None else None
    bias = norm.bias.float() if norm.bias is not None else None
    if keep is None or bool(keep.all()):
        out = F.layer_norm(xf, norm.normalized_shape, weight, bias, norm.eps)
    else:
        k = keep.to(xf.dtype)
        n = k.sum().clamp(min=1.0)
        mean = (xf * k).sum(-1, keepdim=True) / n
        var = ((xf - mean).pow(2) * k).sum(-1, keepdim=True) / n
        out = (xf - mean) * torch.rsqrt(var + norm.eps)
        if weight is not None:
            out = out * weight + bias
    return out.type_as(x)


class GatedConvBlock(nn.Sequential):
    """One conv layer of the feature extractor with gated output channels.

    Same children as S3PRL's block (conv, dropout, [norm], GELU), so the same state-dict keys.
    Input (B, C_in, T_in) -> output (B, C_out, T_out). The channel mask multiplies the output,
    except for the last conv layer, whose mask is applied after the feature layer norm
    (:class:`GatedFeatureLayerNorm`) so that it can be folded into that norm's affine weights.
    """

    def __init__(self, block: nn.Sequential, gate: HardConcreteGate, mask_output: bool) -> None:
        super().__init__(*block)
        _set_gate(self, "gate", gate)
        self.mask_output = mask_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = _mask(self.gate, x)
        x = self[1](self[0](x))
        if len(self) == 4:
            norm = self[2]
            if isinstance(norm, nn.Sequential):  # layer_norm mode: TransposeLast, LayerNorm, TransposeLast
                x = channel_layer_norm(x.transpose(-2, -1), norm[1], mask > 0).transpose(-2, -1)
            else:  # GroupNorm with one group per channel: channels are independent
                x = norm(x)
        x = self[-1](x)
        return x * mask[:, None] if self.mask_output else x


class GatedFeatureLayerNorm(nn.LayerNorm):
    """The layer norm after the conv extractor, gated by the last conv layer's channel gate.

    Input and output (B, T, C). Statistics over kept channels; the mask multiplies the output.
    """

    @classmethod
    def wrap(cls, norm: nn.LayerNorm, gate: HardConcreteGate) -> "GatedFeatureLayerNorm":
        new = cls(norm.normalized_shape, eps=norm.eps, elementwise_affine=norm.weight is not None)
        new.weight, new.bias = norm.weight, norm.bias
        _set_gate(new, "gate", gate)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = _mask(self.gate, x)
        return channel_layer_norm(x, self, mask > 0) * mask


class GatedLinear(nn.Linear):
    """``fc2`` of an FFN: input units masked by the unit gate, output scaled by the sublayer gate.

    Input (..., units) -> output (..., embed_dim).
    """

    @classmethod
    def wrap(
        cls, linear: nn.Linear, unit_gate: Optional[HardConcreteGate], sublayer_gate: Optional[HardConcreteGate]
    ) -> "GatedLinear":
        new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        new.weight, new.bias = linear.weight, linear.bias
        _set_gate(new, "unit_gate", unit_gate)
        _set_gate(new, "sublayer_gate", sublayer_gate)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        units = _mask(self.unit_gate, x)
        if units is not None:
            x = x * units
        y = F.linear(x, self.weight, self.bias)
        sublayer = _mask(self.sublayer_gate, y)
        return y * sublayer if sublayer is not None else y


class MultiheadSelfAttention(nn.Module):
    """Self-attention with any number of heads (zero included) and optional head/sublayer gates.

    Takes the place of S3PRL's (fairseq's) ``MultiheadAttention`` with the same q/k/v/out
    projections and call signature: query (T, B, D) -> (output (T, B, D), None). A layer whose
    attention was removed has zero heads and no output bias, and outputs zeros.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        dropout: float = 0.0,
        out_bias: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        inner = num_heads * head_dim
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, inner, device=device)
        self.k_proj = nn.Linear(embed_dim, inner, device=device)
        self.v_proj = nn.Linear(embed_dim, inner, device=device)
        self.out_proj = nn.Linear(inner, embed_dim, bias=out_bias, device=device)
        _set_gate(self, "head_gate", None)
        _set_gate(self, "sublayer_gate", None)

    @classmethod
    def replace(
        cls,
        mha: nn.Module,
        head_gate: Optional[HardConcreteGate] = None,
        sublayer_gate: Optional[HardConcreteGate] = None,
    ) -> "MultiheadSelfAttention":
        """Take over the projections of a fairseq-style ``MultiheadAttention`` (or of another instance)."""
        new = cls(
            mha.q_proj.in_features,
            mha.num_heads,
            mha.head_dim,
            mha.dropout if isinstance(mha, cls) else mha.dropout_module.p,
            device="meta",
        )
        new.q_proj, new.k_proj, new.v_proj, new.out_proj = mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj
        _set_gate(new, "head_gate", head_gate)
        _set_gate(new, "sublayer_gate", sublayer_gate)
        return new

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, head_dim={self.head_dim}"

    def forward(
        self,
        query: torch.Tensor,
        key: Optional[torch.Tensor] = None,
        value: Optional[torch.Tensor] = None,
        key_padding_mask: Optional[torch.Tensor] = None,
        need_weights: bool = False,
        attn_mask: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, None]:
        if attn_mask is not None:
            raise NotImplementedError("wav2vec2/HuBERT encoders attend without an attn_mask")
        tgt_len, bsz, _ = query.shape
        if self.num_heads == 0:
            context = query.new_zeros(tgt_len, bsz, 0)
        else:
            def heads(x: torch.Tensor) -> torch.Tensor:  # (T, B, H*dh) -> (B, H, T, dh)
                return x.view(tgt_len, bsz, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

            mask = None
            if key_padding_mask is not None:  # True marks padding; SDPA wants True where attending
                mask = ~key_padding_mask.bool()[:, None, None, :]
            context = F.scaled_dot_product_attention(
                heads(self.q_proj(query)),
                heads(self.k_proj(query)),
                heads(self.v_proj(query)),
                attn_mask=mask,
                dropout_p=self.dropout if self.training else 0.0,
            )
            head_mask = _mask(self.head_gate, context)
            if head_mask is not None:
                context = context * head_mask[None, :, None, None]
            context = context.permute(2, 0, 1, 3).reshape(tgt_len, bsz, self.num_heads * self.head_dim)
        out = self.out_proj(context)
        sublayer = _mask(self.sublayer_gate, out)
        return (out * sublayer if sublayer is not None else out), None
