"""Attach HardConcrete gates to an S3PRL wav2vec2/HuBERT/WavLM model, and read expected costs from them.

``UpstreamGates`` owns every gate (the gate math lives in one place, as in CoFiPruning's
``L0Module``); :meth:`UpstreamGates.attach` swaps the gated modules of the model in place for
the ones in :mod:`espnet_prune.pruning.modules`, which keep the original parameters.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import torch
from torch import nn

from espnet_prune.pruning.arch import UpstreamArch
from espnet_prune.pruning.budget import GateKey, select_units
from espnet_prune.pruning.cost import Cost, UnitCounts, upstream_cost
from espnet_prune.pruning.gates import HardConcreteGate
from espnet_prune.pruning.modules import (
    GatedConvBlock,
    GatedFeatureLayerNorm,
    GatedLinear,
    MultiheadSelfAttention,
    WavLMSelfAttention,
)

UNIT_KINDS = ("conv_channels", "heads", "ffn_units", "attention", "ffn")


class Budget(Protocol):
    """What the eval-time masks must meet (a :class:`PruningObjective` is one)."""

    macs_seconds: float

    def current_targets(self) -> dict[str, float]: ...


class UpstreamGates(nn.Module):
    """All gates of one upstream, keyed by unit kind and layer index.

    Args:
        arch: the dense architecture being pruned.
        conv_channels: gate the output channels of every conv layer. The last conv layer is
            gated only when a feature projection follows it (otherwise its width is the
            Transformer width).
        heads: gate the attention heads of every Transformer layer.
        ffn_units: gate the FFN intermediate units of every layer.
        attention: gate each whole attention sublayer.
        ffn: gate each whole FFN sublayer.
        init_drop_rate, temperature, stretch: see :class:`HardConcreteGate`.

    ``budget`` (set by the pruning objective) makes the eval-time masks meet its current targets
    exactly in counted cost (:func:`select_units`); without one each gate rounds on its own.
    """

    def __init__(
        self,
        arch: UpstreamArch,
        conv_channels: bool = True,
        heads: bool = True,
        ffn_units: bool = True,
        attention: bool = True,
        ffn: bool = True,
        init_drop_rate: float = 0.01,
        temperature: float = 2.0 / 3.0,
        stretch: float = 0.1,
    ) -> None:
        super().__init__()
        self.arch = arch

        def gates(sizes, enabled: bool, min_keep: int = 0) -> nn.ModuleDict:
            return nn.ModuleDict(
                {
                    str(i): HardConcreteGate(n, init_drop_rate, temperature, stretch, min_keep=min_keep)
                    for i, n in enumerate(sizes)
                    if enabled and n > 0
                }
            )

        n_conv = len(arch.conv_channels)
        gated_conv = arch.conv_channels if arch.has_feature_projection else arch.conv_channels[:-1]
        self.conv_channels = gates(gated_conv, conv_channels and n_conv > 0, min_keep=1)
        self.heads = gates(arch.heads, heads)
        self.ffn_units = gates(arch.ffn_units, ffn_units)
        self.attention = gates([1 if a else 0 for a in arch.attention], attention)
        self.ffn = gates([1 if f else 0 for f in arch.ffn], ffn)
        self.budget: Budget | None = None
        self._selection: tuple[tuple, dict[GateKey, torch.Tensor]] | None = None

    def kinds(self) -> dict[str, nn.ModuleDict]:
        return {kind: getattr(self, kind) for kind in UNIT_KINDS}

    def set_budget(self, budget: Budget | None) -> None:
        """Make the eval-time masks meet ``budget`` (None: each gate rounds on its own)."""
        object.__setattr__(self, "budget", budget)  # not a submodule: its owner saves it

    def gate_items(self) -> Iterator[tuple[GateKey, HardConcreteGate]]:
        """Every gate with its (unit kind, layer) key."""
        for kind, kind_gates in self.kinds().items():
            for key, gate in kind_gates.items():
                yield (kind, int(key)), gate

    def budget_keep(self) -> dict[GateKey, torch.Tensor] | None:
        """The units the budget keeps, per gate (None without a budget).

        Recomputed only when a gate's parameters or the targets changed: eval forward passes
        (validation, decoding) reuse it.
        """
        if self.budget is None:
            return None
        targets, seconds = self.budget.current_targets(), self.budget.macs_seconds
        items = list(self.gate_items())
        # an optimiser step, load_state_dict or set_keep bumps the parameter's version counter
        state = (tuple(sorted(targets.items())), seconds, tuple((g.log_alpha.data_ptr(), g.log_alpha._version) for _, g in items))
        if self._selection is None or self._selection[0] != state:
            with torch.no_grad():
                keep = select_units(
                    self.arch,
                    {key: gate.prob_nonzero() for key, gate in items},
                    {key: gate.min_keep for key, gate in items},
                    targets,
                    seconds,
                )
            self._selection = (state, keep)
        return self._selection[1]

    def deterministic_masks(self) -> dict[GateKey, torch.Tensor]:
        """The eval-time mask of every gate (soft values, zero where pruned)."""
        keep = self.budget_keep()
        return {key: gate.deterministic_mask(None if keep is None else keep[key]) for key, gate in self.gate_items()}

    def resample(self) -> None:
        """Draw this forward pass's masks: one sample per gate in training, the fixed mask in eval."""
        keep = None if self.training else self.budget_keep()
        for key, gate in self.gate_items():
            gate.resample(None if keep is None else keep[key])

    def gate(self, kind: str, index: int) -> HardConcreteGate | None:
        gates = getattr(self, kind)
        return gates[str(index)] if str(index) in gates else None

    def attach(self, model: nn.Module) -> None:
        """Wrap ``model`` (an S3PRL ``Wav2Vec2Model``, ``HubertModel`` or ``WavLM``) in place."""
        _check_model(model, self.arch)
        if hasattr(model, "pruning_gates"):
            raise ValueError("the model already has pruning gates attached")
        model.pruning_gates = self
        conv_layers = model.feature_extractor.conv_layers
        last = len(conv_layers) - 1
        for i in range(len(conv_layers)):
            gate = self.gate("conv_channels", i)
            if gate is not None:
                conv_layers[i] = GatedConvBlock(conv_layers[i], gate, mask_output=i < last)
        last_gate = self.gate("conv_channels", last)
        if last_gate is not None:
            model.layer_norm = GatedFeatureLayerNorm.wrap(model.layer_norm, last_gate)
        wavlm = self.arch.model_type == "wavlm"
        for i, layer in enumerate(model.encoder.layers):
            head_gate, attention_gate = self.gate("heads", i), self.gate("attention", i)
            if wavlm:  # every layer: the shared position bias passes between ours in its own layout
                layer.self_attn = WavLMSelfAttention.replace(layer.self_attn, head_gate, attention_gate, list(self.arch.kept_heads(i)))
            elif head_gate is not None or attention_gate is not None:
                layer.self_attn = MultiheadSelfAttention.replace(layer.self_attn, head_gate, attention_gate)
            unit_gate, ffn_gate = self.gate("ffn_units", i), self.gate("ffn", i)
            if unit_gate is not None or ffn_gate is not None:
                layer.fc2 = GatedLinear.wrap(layer.fc2, unit_gate, ffn_gate)
        model.train(model.training)  # new modules (and gates) follow the model's train/eval mode
        # S3PRL runs the extractor under no_grad when feature_grad_mult is 0; gates are drawn in a
        # hook on it, so gradients must flow there. Freeze conv weights with requires_grad instead.
        model.feature_grad_mult = 1.0
        self._hook = model.feature_extractor.register_forward_pre_hook(lambda module, args: self.resample())

    def detach(self, model: nn.Module) -> None:
        """Stop drawing masks for ``model`` and drop the gates from it (the wrapped modules stay)."""
        self._hook.remove()
        del model.pruning_gates

    def expected_units(self) -> UnitCounts:
        """Expected number of surviving units of each kind (differentiable tensors where gated)."""
        counts = UnitCounts.of(self.arch)
        for kind, gates in self.kinds().items():
            values = list(getattr(counts, kind))
            for key, gate in gates.items():
                values[int(key)] = gate.prob_nonzero().sum()
            setattr(counts, kind, values)
        return counts

    def final_units(self) -> UnitCounts:
        """Units that the deterministic masks keep: the architecture :func:`shrink_upstream` makes."""
        counts = UnitCounts.of(self.arch)
        for (kind, layer), mask in self.deterministic_masks().items():
            getattr(counts, kind)[layer] = int((mask > 0).sum())
        for i, (a, f) in enumerate(zip(counts.attention, counts.ffn)):
            counts.heads[i] = counts.heads[i] if a else 0
            counts.ffn_units[i] = counts.ffn_units[i] if f else 0
        return counts

    def expected_cost(self, seconds: float) -> Cost:
        """Differentiable expected cost for an input of ``seconds`` seconds."""
        return upstream_cost(self.arch, seconds, self.expected_units())


def _check_model(model: nn.Module, arch: UpstreamArch) -> None:
    for attr in ("feature_extractor", "encoder", "layer_norm"):
        if not hasattr(model, attr):
            raise TypeError(f"{type(model).__name__} is not an S3PRL wav2vec2/HuBERT/WavLM model (no .{attr})")
    if len(model.feature_extractor.conv_layers) != len(arch.conv_channels):
        raise ValueError("the model's conv layers do not match the architecture")
    if len(model.encoder.layers) != arch.num_layers:
        raise ValueError("the model's Transformer layers do not match the architecture")


@torch.no_grad()
def set_random_keep(gates: UpstreamGates, keep: float, generator: torch.Generator) -> None:
    """Close a random ``1 - keep`` share of the units of every gated kind (sublayers stay open).

    Used to make pruned models without training, for tests and speed benchmarks.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep fraction must be in (0, 1], got {keep}")
    for kind in ("conv_channels", "heads", "ffn_units"):
        for gate in getattr(gates, kind).values():
            n_keep = max(gate.min_keep, round(keep * gate.num_units))
            chosen = torch.randperm(gate.num_units, generator=generator)[:n_keep]
            mask = torch.zeros(gate.num_units, dtype=torch.bool)
            mask[chosen] = True
            gate.set_keep(mask)
    for kind in ("attention", "ffn"):
        for gate in getattr(gates, kind).values():
            gate.set_keep(torch.ones(1, dtype=torch.bool))
