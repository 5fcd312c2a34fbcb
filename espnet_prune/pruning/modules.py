"""Modules that take the place of S3PRL's own inside a wav2vec2/HuBERT/WavLM model.

Each keeps the parameters (and so the state-dict keys) of the module it replaces and only adds
what pruning needs: a per-layer number of heads, masks from gates, layer norms whose statistics
ignore pruned channels. Gates are owned by :class:`~espnet_prune.pruning.plugin.UpstreamGates`;
a module only keeps an unregistered reference, so each gate is saved once.
"""

from __future__ import annotations

import math
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

    def _gate_heads(self, context: torch.Tensor) -> torch.Tensor:
        """Scale each head's context (B, H, T, dh) by its gate."""
        head_mask = _mask(self.head_gate, context)
        return context if head_mask is None else context * head_mask[None, :, None, None]

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
        mask = None
        if key_padding_mask is not None:  # True marks padding; SDPA wants True where attending
            mask = ~key_padding_mask.bool()[:, None, None, :]
        return self._attend(query, mask), None

    def _attend(self, query: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Gated self-attention of query (T, B, D) -> (T, B, D); ``mask`` is SDPA's ``attn_mask``
        (boolean, True where attending, or additive), broadcast to (B, H, T, T)."""
        tgt_len, bsz, _ = query.shape
        if self.num_heads == 0:
            context = query.new_zeros(tgt_len, bsz, 0)
        else:
            def heads(x: torch.Tensor) -> torch.Tensor:  # (T, B, H*dh) -> (B, H, T, dh)
                return x.view(tgt_len, bsz, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

            context = F.scaled_dot_product_attention(
                heads(self.q_proj(query)),
                heads(self.k_proj(query)),
                heads(self.v_proj(query)),
                attn_mask=mask,
                dropout_p=self.dropout if self.training else 0.0,
            )
            context = self._gate_heads(context).permute(2, 0, 1, 3).reshape(tgt_len, bsz, self.num_heads * self.head_dim)
        out = self.out_proj(context)
        sublayer = _mask(self.sublayer_gate, out)
        return out * sublayer if sublayer is not None else out


def relative_position_buckets(length: int, num_buckets: int, max_distance: int, device: torch.device) -> torch.Tensor:
    """WavLM's (T5's bidirectional) bucket of every key position relative to every query: (T, T) long.

    Half the buckets per direction; within each, exact distances below half of them, then
    logarithmically spaced up to ``max_distance``.
    """
    position = torch.arange(length, dtype=torch.long, device=device)
    relative = position[None, :] - position[:, None]
    half = num_buckets // 2
    buckets = (relative > 0).to(torch.long) * half
    distance = relative.abs()
    max_exact = half // 2
    large = max_exact + (
        torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).to(torch.long)
    large = large.clamp(max=half - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class WavLMSelfAttention(MultiheadSelfAttention):
    """WavLM's self-attention: :class:`MultiheadSelfAttention` plus the gated relative position bias.

    Layer 0 owns the bias table (``relative_attention_bias``: buckets x dense heads) and returns
    the (dense heads, T, T) bias for the layers after it; each layer uses the rows of the heads it
    kept (``head_index``, original head numbers), scaled per head and query frame by the gated
    relative position unit (``grep_linear`` on that head's slice of the layer input, ``grep_a``).
    Same parameter names as S3PRL's WavLM ``MultiheadAttention``; query (T, B, D) ->
    (output (T, B, D), None, position bias).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        dropout: float = 0.0,
        out_bias: bool = True,
        device: torch.device | str | None = None,
        head_index: Optional[list[int]] = None,
        num_buckets: int = 0,
        max_distance: int = 0,
        bias_table_heads: int = 0,
        gru_rel_pos: bool = False,
    ) -> None:
        super().__init__(embed_dim, num_heads, head_dim, dropout, out_bias, device)
        index = list(range(num_heads)) if head_index is None else list(head_index)
        if len(index) != num_heads:
            raise ValueError(f"head_index {index} does not name {num_heads} heads")
        self.register_buffer("head_index", torch.tensor(index, dtype=torch.long, device=device), persistent=False)
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, bias_table_heads, device=device) if bias_table_heads else None
        self.grep_linear = nn.Linear(head_dim, 8, device=device) if gru_rel_pos else None
        self.grep_a = nn.Parameter(torch.ones(1, num_heads, 1, 1, device=device)) if gru_rel_pos else None

    @classmethod
    def replace(
        cls,
        mha: nn.Module,
        head_gate: Optional[HardConcreteGate] = None,
        sublayer_gate: Optional[HardConcreteGate] = None,
        head_index: Optional[list[int]] = None,
    ) -> "WavLMSelfAttention":
        """Take over every parameter of S3PRL's WavLM ``MultiheadAttention`` (or of another instance)."""
        table = getattr(mha, "relative_attention_bias", None)
        grep_linear = getattr(mha, "grep_linear", None)
        if head_index is None:
            own = getattr(mha, "head_index", None)
            head_index = list(range(mha.num_heads)) if own is None else own.tolist()
        new = cls(
            mha.q_proj.in_features,
            mha.num_heads,
            mha.head_dim,
            mha.dropout if isinstance(mha, MultiheadSelfAttention) else mha.dropout_module.p,
            device="meta",
            head_index=head_index,
            num_buckets=mha.num_buckets,
            max_distance=mha.max_distance,
            bias_table_heads=0 if table is None else table.embedding_dim,
            gru_rel_pos=grep_linear is not None,
        )
        new.head_index = torch.tensor(head_index, dtype=torch.long, device=mha.q_proj.weight.device)
        new.q_proj, new.k_proj, new.v_proj, new.out_proj = mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj
        new.relative_attention_bias, new.grep_linear = table, grep_linear
        if grep_linear is not None:
            new.grep_a = mha.grep_a
        _set_gate(new, "head_gate", head_gate)
        _set_gate(new, "sublayer_gate", sublayer_gate)
        return new

    def _rel_pos_bias(self, query: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        """This layer's additive attention bias (B or 1, heads, T, T) from the shared (H, T, T) one."""
        bias = position_bias[self.head_index]
        if self.grep_linear is None:
            return bias[None]
        tgt_len, bsz, dim = query.shape
        slices = query.transpose(0, 1).reshape(bsz, tgt_len, dim // self.head_dim, self.head_dim)
        slices = slices[:, :, self.head_index].permute(0, 2, 1, 3)  # (B, heads, T, dh)
        gate_a, gate_b = torch.sigmoid(self.grep_linear(slices).view(*slices.shape[:-1], 2, 4).sum(-1)).chunk(2, dim=-1)
        return (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias

    def forward(
        self,
        query: torch.Tensor,
        key: Optional[torch.Tensor] = None,
        value: Optional[torch.Tensor] = None,
        key_padding_mask: Optional[torch.Tensor] = None,
        need_weights: bool = False,
        attn_mask: Optional[torch.Tensor] = None,
        position_bias: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, None, Optional[torch.Tensor]]:
        if attn_mask is not None:
            raise NotImplementedError("WavLM encoders attend without an attn_mask")
        if position_bias is None and self.relative_attention_bias is not None:
            buckets = relative_position_buckets(query.shape[0], self.num_buckets, self.max_distance, query.device)
            position_bias = self.relative_attention_bias(buckets).permute(2, 0, 1)
        if self.num_heads == 0 or position_bias is None:
            out, _ = super().forward(query, key_padding_mask=key_padding_mask)
            return out, None, position_bias
        mask = self._rel_pos_bias(query, position_bias).to(query.dtype)
        if key_padding_mask is not None:
            mask = mask.masked_fill(key_padding_mask.bool()[:, None, None, :], float("-inf"))
        return self._attend(query, mask), None, position_bias
