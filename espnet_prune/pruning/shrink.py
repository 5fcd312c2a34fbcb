"""Turn a gated model into a smaller dense one, and give a fresh model a pruned architecture.

:func:`shrink_upstream` removes pruned channels, heads, FFN units and sublayers and folds the
surviving (soft) mask values into the weights that consume them, so the shrunk model computes
what the gated model computes in eval mode. :func:`apply_arch_` builds the module shapes of a
pruned architecture on a freshly constructed S3PRL model, so that a shrunk state dict loads.
Both go through the same module construction, so a model shrunk here and one loaded from disk
are the same.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from espnet_prune.pruning.arch import UpstreamArch
from espnet_prune.pruning.modules import MultiheadSelfAttention, WavLMSelfAttention
from espnet_prune.pruning.plugin import UpstreamGates


def apply_arch_(model: nn.Module, arch: UpstreamArch) -> None:
    """Replace the prunable modules of ``model`` by (uninitialised) ones of ``arch``'s shapes.

    ``model`` is an S3PRL Wav2Vec2Model/HubertModel/WavLM built from the dense config of ``arch``; its
    prunable weights must be loaded afterwards (e.g. ``load_state_dict``).
    """
    device = model.layer_norm.weight.device
    c_in = 1
    for i, (block, c_out, k, s) in enumerate(
        zip(model.feature_extractor.conv_layers, arch.conv_channels, arch.conv_kernels, arch.conv_strides)
    ):
        block = nn.Sequential(*block)  # a GatedConvBlock becomes a plain block again
        block[0] = nn.Conv1d(c_in, c_out, k, stride=s, bias=arch.conv_bias, device=device)
        if len(block) == 4:
            norm = block[2]
            if isinstance(norm, nn.Sequential):
                norm[1] = type(norm[1])(c_out, eps=norm[1].eps, device=device)
            else:
                block[2] = type(norm)(c_out, c_out, eps=norm.eps, affine=True, device=device)
        model.feature_extractor.conv_layers[i] = block
        c_in = c_out
    model.layer_norm = nn.LayerNorm(c_in, eps=model.layer_norm.eps, device=device)
    if arch.has_feature_projection:
        model.post_extract_proj = nn.Linear(c_in, arch.encoder_dim, device=device)
    d = arch.encoder_dim
    for i, (layer, heads, units, has_attention, has_ffn) in enumerate(
        zip(model.encoder.layers, arch.heads, arch.ffn_units, arch.attention, arch.ffn)
    ):
        dropout = layer.self_attn.dropout if isinstance(layer.self_attn, MultiheadSelfAttention) else layer.self_attn.dropout_module.p
        heads = heads if has_attention else 0
        if arch.model_type == "wavlm":
            layer.self_attn = WavLMSelfAttention(
                d, heads, arch.head_dim, dropout, out_bias=has_attention, device=device,
                head_index=list(arch.kept_heads(i)),
                num_buckets=arch.rel_pos_buckets,
                max_distance=arch.rel_pos_max_distance,
                bias_table_heads=arch.rel_pos_heads if i == 0 else 0,
                gru_rel_pos=arch.gru_rel_pos and has_attention,
            )
        else:
            layer.self_attn = MultiheadSelfAttention(d, heads, arch.head_dim, dropout, out_bias=has_attention, device=device)
        layer.fc1 = nn.Linear(d, units if has_ffn else 0, device=device)
        layer.fc2 = nn.Linear(units if has_ffn else 0, d, bias=has_ffn, device=device)
    model.train(model.training)  # the new modules follow the model's train/eval mode


def _kept(mask: torch.Tensor | None, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of surviving units and their mask values (all of them, scale 1, when ungated)."""
    if mask is None:
        return torch.arange(size), torch.ones(size)
    index = torch.nonzero(mask > 0).flatten()
    return index, mask[index]


@torch.no_grad()
def shrink_upstream(model: nn.Module) -> UpstreamArch:
    """Physically prune a model carrying ``UpstreamGates`` (see ``UpstreamGates.attach``), in place.

    Uses the deterministic (eval) masks, which meet the gates' budget when they have one. Returns the architecture of the shrunk model; the gates
    and their hook are removed.
    """
    gates: UpstreamGates = getattr(model, "pruning_gates", None)
    if not isinstance(gates, UpstreamGates):
        raise ValueError("the model has no pruning gates attached: nothing to shrink")
    dense = gates.arch
    masks = {key: mask.detach().cpu() for key, mask in gates.deterministic_masks().items()}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("pruning_gates.")}

    conv_channels = []
    prev_index, prev_scale = torch.arange(1), torch.ones(1)
    last = len(dense.conv_channels) - 1
    for i, c in enumerate(dense.conv_channels):
        index, scale = _kept(masks.get(("conv_channels", i)), c)
        prefix = f"feature_extractor.conv_layers.{i}."
        weight = state[prefix + "0.weight"][index][:, prev_index] * prev_scale[None, :, None]
        state[prefix + "0.weight"] = weight
        for key in list(state):
            if key.startswith(prefix) and key != prefix + "0.weight":
                state[key] = state[key][index]  # conv bias and norm affine parameters are per channel
        conv_channels.append(len(index))
        # the last layer's mask is folded into the feature layer norm, the others into the next conv
        prev_index, prev_scale = index, (scale if i < last else torch.ones(len(index)))
    state["layer_norm.weight"] = state["layer_norm.weight"][prev_index] * scale
    state["layer_norm.bias"] = state["layer_norm.bias"][prev_index] * scale
    if dense.has_feature_projection:
        state["post_extract_proj.weight"] = state["post_extract_proj.weight"][:, prev_index]

    heads, head_numbers, ffn_units, attention, ffn = [], [], [], [], []
    dh = dense.head_dim
    for i, (n_heads, n_units) in enumerate(zip(dense.heads, dense.ffn_units)):
        prefix = f"encoder.layers.{i}."
        # an ungated sublayer stays as it is: one already removed (re-pruning a shrunk model) stays removed
        sub = masks.get(("attention", i), torch.ones(1) if dense.attention[i] else torch.zeros(1))
        head_index, head_scale = _kept(masks.get(("heads", i)), n_heads)
        if sub[0] == 0:
            head_index, head_scale = head_index[:0], head_scale[:0]
        inner = (head_index[:, None] * dh + torch.arange(dh)[None, :]).flatten()
        for proj in ("q_proj", "k_proj", "v_proj"):
            state[prefix + f"self_attn.{proj}.weight"] = state[prefix + f"self_attn.{proj}.weight"][inner]
            state[prefix + f"self_attn.{proj}.bias"] = state[prefix + f"self_attn.{proj}.bias"][inner]
        out_w = state[prefix + "self_attn.out_proj.weight"][:, inner]
        state[prefix + "self_attn.out_proj.weight"] = out_w * head_scale.repeat_interleave(dh)[None, :] * sub
        if sub[0] == 0:
            for name in ("out_proj.bias", "grep_linear.weight", "grep_linear.bias", "grep_a"):
                state.pop(prefix + "self_attn." + name, None)  # absent if the sublayer was already removed
        else:
            state[prefix + "self_attn.out_proj.bias"] = state[prefix + "self_attn.out_proj.bias"] * sub
            if prefix + "self_attn.grep_a" in state:
                state[prefix + "self_attn.grep_a"] = state[prefix + "self_attn.grep_a"][:, head_index]
        heads.append(len(head_index))
        head_numbers.append(tuple(dense.kept_heads(i)[j] for j in head_index.tolist()))
        attention.append(bool(sub[0] > 0))

        sub = masks.get(("ffn", i), torch.ones(1) if dense.ffn[i] else torch.zeros(1))
        unit_index, unit_scale = _kept(masks.get(("ffn_units", i)), n_units)
        if sub[0] == 0:
            unit_index, unit_scale = unit_index[:0], unit_scale[:0]
        state[prefix + "fc1.weight"] = state[prefix + "fc1.weight"][unit_index]
        state[prefix + "fc1.bias"] = state[prefix + "fc1.bias"][unit_index]
        state[prefix + "fc2.weight"] = state[prefix + "fc2.weight"][:, unit_index] * unit_scale[None, :] * sub
        if sub[0] == 0:
            state.pop(prefix + "fc2.bias", None)
        else:
            state[prefix + "fc2.bias"] = state[prefix + "fc2.bias"] * sub
        ffn_units.append(len(unit_index))
        ffn.append(bool(sub[0] > 0))

    arch = dataclasses.replace(
        dense,
        conv_channels=tuple(conv_channels),
        heads=tuple(heads),
        ffn_units=tuple(ffn_units),
        attention=tuple(attention),
        ffn=tuple(ffn),
        head_index=tuple(head_numbers) if dense.model_type == "wavlm" else (),
    )
    device = model.layer_norm.weight.device
    gates.detach(model)
    apply_arch_(model, arch)
    model.load_state_dict({k: v.to(device) for k, v in state.items()})
    return arch
