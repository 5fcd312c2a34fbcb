"""Budgets: which units the deterministic (eval / shrink) masks keep, chosen over the whole upstream.

FLOP/CoFi's test-time rule keeps ``round(expected L0)`` units per gate, each gate on its own. Its
error does not cancel: a half-open sublayer gate keeps a whole sublayer that the expected cost
counts at half, and a conv layer's channels multiply the next layer's. On the synthetic LibriSpeech
recipe it left mac:0.5 at 0.575 counted sparsity. Here the units of every gate are ranked together
by their gate's probability of being non-zero (what training learnt) and removed, least probable
first, while the exact cost model (:func:`upstream_cost` on integer counts, the shrunk model's own
count) says a budget is not met. A removal that would overshoot a budget by more than
``tolerance`` is passed over for the next unit in the ranking, so that one large unit (a whole
sublayer) cannot overshoot the target by its own size; the counted sparsity then lands in
[target - 2 tolerance, target + tolerance], or as close as the units allow.
"""

from __future__ import annotations

from typing import Mapping

import torch

from espnet_prune.pruning.arch import UpstreamArch
from espnet_prune.pruning.cost import Cost, UnitCounts, upstream_cost

GateKey = tuple[str, int]  # (unit kind, layer index)
COST_NAMES = ("params", "macs", "cnn_params", "transformer_params", "cnn_macs", "transformer_macs")


def cost_value(cost: Cost, name: str) -> float | torch.Tensor:
    """One named cost of ``COST_NAMES``."""
    if name not in COST_NAMES:
        raise ValueError(f"unknown cost {name!r}; choose from {COST_NAMES}")
    return getattr(cost, name)


def sparsities(cost: Cost, dense: Cost, names: tuple[str, ...] | list[str]) -> dict[str, float]:
    """``1 - cost / dense`` for each named cost."""
    return {name: 1.0 - float(cost_value(cost, name)) / float(cost_value(dense, name)) for name in names}


def select_units(
    arch: UpstreamArch,
    scores: Mapping[GateKey, torch.Tensor],
    min_keep: Mapping[GateKey, int],
    targets: Mapping[str, float],
    seconds: float,
    tolerance: float = 0.005,
) -> dict[GateKey, torch.Tensor]:
    """Keep masks that meet every budget with the fewest, least probable units removed.

    Args:
        arch: the architecture the gates prune (its counts are the starting point).
        scores: per gate, shape (num_units,): the ranking score of each unit (P(gate > 0)).
        min_keep: per gate, the fewest units it may keep.
        targets: sparsity to reach per cost name (``1 - cost / dense cost`` >= target).
        seconds: input length at which MACs are counted.
        tolerance: the largest overshoot of a budget accepted while another unit can still meet it;
            twice it is the shortfall accepted rather than a larger overshoot.

    Returns:
        per gate, a bool tensor (num_units,) on the device of its scores: True = kept.
    """
    dense = upstream_cost(arch, seconds)
    counts = UnitCounts.of(arch)
    keep = {key: torch.ones(len(s), dtype=torch.bool) for key, s in scores.items()}
    names = [name for name, t in targets.items() if t > 0]
    if names:
        keys = list(scores)
        flat = torch.cat([scores[key].detach().float().cpu() for key in keys])
        owner = torch.cat([torch.full((len(scores[key]),), i) for i, key in enumerate(keys)])
        index = torch.cat([torch.arange(len(scores[key])) for key in keys])
        order = torch.argsort(flat, stable=True).tolist()
        current = sparsities(dense, dense, names)
        # Pass 1 removes units while no budget they move would overshoot by more than `tolerance` (a
        # last-layer conv channel moves the CNN's and the Transformer's parameters; size_mac's two
        # costs move together). It can stop short when only coarse units are left (a head is ~4 % of
        # a tiny model): within 2 x tolerance below the target is then closer than the next unit.
        # Further short of it, pass 2 checks overshooting only on the budgets still short, pass 3
        # not at all.
        for checked, slack in (("all", 0.0), ("short", 2 * tolerance), ("none", 2 * tolerance)):
            for position in order:
                short = [name for name in names if current[name] < targets[name] - slack]
                if not short:
                    break
                key, i = keys[int(owner[position])], int(index[position])
                if not keep[key][i] or int(keep[key].sum()) <= min_keep.get(key, 0):
                    continue
                values = getattr(counts, key[0])
                values[key[1]] -= 1
                trial = sparsities(upstream_cost(arch, seconds, counts), dense, names)
                helps = any(trial[name] > current[name] for name in short)
                limited = {"all": names, "short": short, "none": []}[checked]
                overshoots = any(trial[name] > max(targets[name] + tolerance, current[name]) for name in limited)
                if helps and not overshoots:
                    keep[key][i] = False
                    current = trial
                else:
                    values[key[1]] += 1
    return {key: mask.to(scores[key].device) for key, mask in keep.items()}
