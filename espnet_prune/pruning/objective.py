"""The pruning objective: budgets on the expected cost, held by a Lagrangian controller.

For each constrained cost c (e.g. all MACs), the expected sparsity is
``s_c = 1 - E[cost_c] / dense_cost_c``, computed from the gate probabilities. The term added to
the task loss is ``lambda1_c (s_c - t_c) + (lambda2_c + damping) (s_c - t_c)^2``; the gates minimise
it, the lambdas maximise it (gradient ascent, CoFiPruning's formulation), and the target ``t_c``
rises linearly from 0 over ``warmup_steps``.

``damping`` is a fixed quadratic penalty (the damping of Platt & Barr's modified differential
method of multipliers), applied by default once the target has stopped rising. Without it the
controller is an integrator driving gates that lag the ramp: lambda1 winds up during the warm-up
and the expected sparsity overshoots, then swings for hundreds of steps (prune_selfcheck, 42 runs:
up to 0.058 off at the end; synthetic LibriSpeech HJ-Pruning-MAC 0.5: 0.42-0.46 at the end of its
400 steps). Damping from the first step holds every run within 0.010, but it also drives the gates
along the ramp, and on the synthetic LibriSpeech recipe it cost accuracy (3 seeds: WER 14.9 % against
12.1 % undamped). Damping only after the warm-up leaves the units' choice to the Lagrangian and task
while the target rises and arrests the overshoot afterwards (egs2/synth_librispeech/asr1/
RESULTS_controllers.md). Its weight, 300: at 100 the multiplier that wound up during the warm-up
still held HJ-Pruning-Size 0.7 0.02 over its target at the end of prune_selfcheck's 400 steps; at 300
every one of its 42 runs ends within 0.009 with the same task loss, and the recipe's HJ-Pruning-MAC 0.5
lands at 0.518 expected (100: 0.533) with the same WER (benchmarks/RESULTS_budgets.md).
The shrunk model's counted cost does not depend on any of this (the budget's
selection lands it). The objective is also the gates' budget: in eval mode their
masks keep the units that meet the current targets in counted cost (see :mod:`budget`), and the
statistics then report that counted sparsity next to the expected one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
from torch import nn

from espnet_prune.pruning.arch import UpstreamArch
from espnet_prune.pruning.budget import cost_value, sparsities
from espnet_prune.pruning.cost import UnitCounts, upstream_cost
from espnet_prune.pruning.plugin import UNIT_KINDS, UpstreamGates


@dataclass(frozen=True)
class Method:
    """A pruning method: which gates exist and which costs are constrained."""

    constraints: tuple[str, ...]
    prune_cnn: bool


METHODS: dict[str, Method] = {
    "trf_only": Method(("params",), prune_cnn=False),  # the prior-work baseline
    "sep_size": Method(("cnn_params", "transformer_params"), prune_cnn=True),
    "size": Method(("params",), prune_cnn=True),  # HJ-Pruning-Size
    "mac": Method(("macs",), prune_cnn=True),  # HJ-Pruning-MAC
    "size_mac": Method(("params", "macs"), prune_cnn=True),
}


def smallest_units(gates: UpstreamGates) -> UnitCounts:
    """The fewest units the gates can leave: every gated unit pruned (conv layers keep one channel)."""
    counts = UnitCounts.of(gates.arch)
    for kind, kind_gates in gates.kinds().items():
        values = list(getattr(counts, kind))
        for key, gate in kind_gates.items():
            values[int(key)] = gate.min_keep
        setattr(counts, kind, values)
    return counts


class PruningObjective(nn.Module):
    """Lagrangian budget term for one upstream's gates.

    Args:
        gates: the upstream's gates (attached with :func:`gate_conf_for` ``(method)``).
        method: one of ``METHODS``.
        target: final sparsity in [0, 1) for every constrained cost.
        targets: per-cost overrides, e.g. ``{"cnn_params": 0.3, "transformer_params": 0.6}``.
        warmup_steps: training forward passes over which the target rises linearly from 0.
        macs_seconds: input length at which MACs are counted (e.g. the corpus's mean utterance).
        reg_lr: learning rate of the gates and the lambdas (see :func:`param_groups`).
        damping: weight of the fixed quadratic penalty ``damping (s - t)^2`` added to the learnt one
            (0: the Lagrangian alone).
        damping_after_warmup: apply ``damping`` only once the target has stopped rising, so that the
            gates choose their units during the warm-up under the Lagrangian alone (False: from the
            first step).
    """

    def __init__(
        self,
        gates: UpstreamGates,
        method: str = "mac",
        target: float = 0.5,
        targets: Optional[Mapping[str, float]] = None,
        warmup_steps: int = 1000,
        macs_seconds: float = 10.0,
        reg_lr: float = 0.02,
        damping: float = 300.0,
        damping_after_warmup: bool = True,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown pruning method {method!r}; choose from {sorted(METHODS)}")
        self.method = method
        self.constraints = METHODS[method].constraints
        finals = {c: float(target) for c in self.constraints}
        for name, value in (targets or {}).items():
            if name not in finals:
                raise ValueError(f"method {method!r} constrains {list(self.constraints)}, not {name!r}")
            finals[name] = float(value)
        if warmup_steps < 0 or macs_seconds <= 0 or reg_lr <= 0 or damping < 0:
            raise ValueError("warmup_steps and damping must be >= 0, macs_seconds and reg_lr > 0")
        self.warmup_steps = warmup_steps
        self.macs_seconds = macs_seconds
        self.reg_lr = reg_lr
        self.damping = damping
        self.damping_after_warmup = damping_after_warmup
        object.__setattr__(self, "gates", gates)  # owned by the upstream; registering here would save it twice
        self.dense = upstream_cost(gates.arch, macs_seconds)
        floor = upstream_cost(gates.arch, macs_seconds, smallest_units(gates))
        self.final_targets = finals
        for name, t in finals.items():
            if not 0.0 <= t < 1.0:
                raise ValueError(f"target for {name!r} must be in [0, 1), got {t}")
            reachable = 1.0 - cost_value(floor, name) / cost_value(self.dense, name)
            if t > reachable:
                raise ValueError(
                    f"target {t} for {name!r} is out of reach of method {method!r}: "
                    f"the gated units can remove at most {reachable:.3f} of it"
                )
        gates.set_budget(self)
        self.lambdas = nn.Parameter(torch.zeros(len(self.constraints), 2))
        # gradient ascent on the lambdas: their gradients are negated before any optimiser sees them
        self.lambdas.register_hook(lambda grad: -grad)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def current_targets(self) -> dict[str, float]:
        ramp = 1.0 if self.warmup_steps == 0 else min(1.0, float(self.step) / self.warmup_steps)
        return {name: t * ramp for name, t in self.final_targets.items()}

    def expected_sparsity(self) -> dict[str, torch.Tensor]:
        """s_c = 1 - E[cost_c] / dense_c for each constrained cost (differentiable)."""
        expected = self.gates.expected_cost(self.macs_seconds)
        return {name: 1.0 - cost_value(expected, name) / cost_value(self.dense, name) for name in self.constraints}

    def counted_sparsity(self) -> dict[str, float]:
        """Sparsity of each constrained cost for the units the eval-time masks keep (the shrunk model)."""
        counted = upstream_cost(self.gates.arch, self.macs_seconds, self.gates.final_units())
        return sparsities(counted, self.dense, self.constraints)

    def forward(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The Lagrangian term and statistics for the reporter; one training call = one warm-up step.

        Eval calls (validation) add ``counted_sparsity_<cost>``: what shrinking now would give.
        """
        targets = self.current_targets()
        damping = 0.0 if self.damping_after_warmup and int(self.step) < self.warmup_steps else self.damping
        if self.training:
            self.step += 1
        sparsity = self.expected_sparsity()
        loss = self.lambdas.new_zeros(())
        stats: dict[str, torch.Tensor] = {}
        for i, name in enumerate(self.constraints):
            gap = sparsity[name] - targets[name]
            loss = loss + self.lambdas[i, 0] * gap + (self.lambdas[i, 1] + damping) * gap * gap
            stats[f"sparsity_{name}"] = sparsity[name].detach()
            stats[f"target_{name}"] = torch.tensor(targets[name])
            stats[f"lambda1_{name}"] = self.lambdas[i, 0].detach()
            stats[f"lambda2_{name}"] = self.lambdas[i, 1].detach()
        if not self.training:
            for name, value in self.counted_sparsity().items():
                stats[f"counted_sparsity_{name}"] = torch.tensor(value)
        with torch.no_grad():
            units = self.gates.expected_units()
        for kind in UNIT_KINDS:
            stats[f"remaining_{kind}"] = torch.as_tensor(sum(float(v) for v in getattr(units, kind)))
        return loss, stats


def gate_conf_for(method: str, **gate_conf: Any) -> dict[str, Any]:
    """Gate options for ``method`` (``trf_only`` leaves the CNN ungated); ``gate_conf`` adds to them."""
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; choose from {sorted(METHODS)}")
    if not METHODS[method].prune_cnn:
        if gate_conf.get("conv_channels"):
            raise ValueError(f"method {method!r} does not prune the CNN: conv_channels must be false")
        gate_conf = {**gate_conf, "conv_channels": False}
    return gate_conf


def param_groups(model: nn.Module, lr: float, reg_lr: float, weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """Optimiser groups: the model's weights (``lr``), then gates and lambdas (``reg_lr``, no decay).

    Gate parameters are found as ``HardConcreteGate.log_alpha``; lambdas as ``PruningObjective.lambdas``
    (their gradients are already negated, so a plain optimiser ascends on them). The pruning group
    asks Adam-type optimisers for no momentum (``betas=(0, 0.999)``): with the default 0.9 the
    Lagrangian controller overshot its target by 0.05-0.15 and was still drifting after 400 steps,
    without it it settled within 0.01 (prune_selfcheck, tiny model). Other optimisers ignore the key.
    """
    from espnet_prune.pruning.gates import HardConcreteGate

    pruning = {}
    for module in model.modules():
        if isinstance(module, HardConcreteGate):
            pruning[id(module.log_alpha)] = module.log_alpha
        elif isinstance(module, PruningObjective):
            pruning[id(module.lambdas)] = module.lambdas
    weights = [p for p in model.parameters() if id(p) not in pruning and p.requires_grad]
    return [
        {"params": weights, "lr": lr, "weight_decay": weight_decay},
        {"params": list(pruning.values()), "lr": reg_lr, "weight_decay": 0.0, "betas": (0.0, 0.999)},
    ]


def pruning_summary(dense: UpstreamArch, pruned: UpstreamArch, seconds: float = 10.0) -> dict[str, Any]:
    """What remains of each layer, and the totals, as a JSON-ready dict."""
    before, after = upstream_cost(dense, seconds), upstream_cost(pruned, seconds)
    return {
        "conv": [
            {"layer": i, "channels": c, "of": d} for i, (c, d) in enumerate(zip(pruned.conv_channels, dense.conv_channels))
        ],
        "transformer": [
            {
                "layer": i,
                "attention": a,
                "heads": h,
                "of_heads": dh,
                "ffn": f,
                "ffn_units": u,
                "of_ffn_units": du,
            }
            for i, (a, h, dh, f, u, du) in enumerate(
                zip(pruned.attention, pruned.heads, dense.heads, pruned.ffn, pruned.ffn_units, dense.ffn_units)
            )
        ],
        "seconds": seconds,
        "dense": before.to_dict(),
        "pruned": after.to_dict(),
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    """A plain-text table of :func:`pruning_summary`."""
    lines = ["CNN layer   channels"]
    lines += [f"  conv{r['layer']:<3}  {r['channels']:>5} / {r['of']}" for r in summary["conv"]]
    lines.append("Transformer layer   heads        FFN units")
    for r in summary["transformer"]:
        heads = f"{r['heads']:>3} / {r['of_heads']}" if r["attention"] else "  removed"
        ffn = f"{r['ffn_units']:>5} / {r['of_ffn_units']}" if r["ffn"] else "removed"
        lines.append(f"  layer{r['layer']:<3}         {heads:<12} {ffn}")
    d, p = summary["dense"], summary["pruned"]
    lines.append(
        f"params {p['params']['total'] / 1e6:.3f} M of {d['params']['total'] / 1e6:.3f} M; "
        f"MACs ({summary['seconds']:g} s) {p['macs']['total'] / 1e9:.3f} G of {d['macs']['total'] / 1e9:.3f} G "
        f"(CNN {p['macs']['cnn'] / 1e9:.3f} G of {d['macs']['cnn'] / 1e9:.3f} G)"
    )
    budget = summary.get("budget")
    if budget:
        lines += [
            f"sparsity of {name} at {budget['seconds']:g} s: target {t:.3f}, expected {budget['expected'][name]:.3f}, "
            f"counted {budget['counted'][name]:.3f}"
            for name, t in budget["targets"].items()
        ]
    return "\n".join(lines)
