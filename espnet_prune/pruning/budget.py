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
[target - 2 tolerance, target + tolerance], or as close as the units allow. Where the ranking's
order leaves a larger gap (a whole sublayer taken early, after which only coarse units are left),
the selection is repeated with each removed sublayer kept whole, so its own units can close it.

Two budgets that move together (``size_mac``'s parameters and MACs; ``sep_size``'s CNN and
Transformer parameters, both moved by a last-layer conv channel) can leave the ranking with one
met and the other short: every unit it would remove next costs both. A repair step then moves
the counts of two kinds of unit at once, whose cost ratios differ (a conv channel is mostly MACs,
an FFN unit mostly parameters), by as many units as cancel the misses, until every budget is
within ``tolerance`` or no move gets closer (measured on the synthetic recipes' selfcheck: size_mac
0.3 had counted 0.291 / 0.420 without it). A removed sublayer counts as a unit count of 0, so that
restoring it with a few units is one small move (nearly equal gates once left every FFN sublayer
removed and the parameters 0.014 short, with no one-unit trade that helped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
    names = [name for name, t in targets.items() if t > 0]
    if not names:
        return {key: torch.ones(len(s), dtype=torch.bool, device=s.device) for key, s in scores.items()}
    budget = _Budget(arch, scores, min_keep, targets, seconds, tolerance, upstream_cost(arch, seconds), names)
    best = _remove_in_order(budget, frozenset())
    # A whole sublayer removed early can leave a gap that only coarse units (heads) can close, while
    # its own fine units could have, had it stayed (selfcheck trf_only 0.3: both FFN sublayers out
    # gave 0.286, a head more 0.321): try again with each removed sublayer kept whole.
    if budget.violation(best[2]) > 0:
        removed = [key for key, mask in best[0].items() if key[0] in ("attention", "ffn") and not mask.all()]
        for key in removed:
            trial = _remove_in_order(budget, frozenset([key]))
            if budget.violation(trial[2]) < budget.violation(best[2]):
                best = trial
    keep, counts, current = best
    if len(names) > 1 and budget.violation(current) > 0:
        _trade_units(budget, keep, counts)
    return {key: mask.to(scores[key].device) for key, mask in keep.items()}


@dataclass(frozen=True)
class _Budget:
    """One selection problem: :func:`select_units`' arguments, the dense cost and the constrained names."""

    arch: UpstreamArch
    scores: Mapping[GateKey, torch.Tensor]
    min_keep: Mapping[GateKey, int]
    targets: Mapping[str, float]
    seconds: float
    tolerance: float
    dense: Cost
    names: list[str]

    def counted(self, counts: UnitCounts) -> dict[str, float]:
        return sparsities(upstream_cost(self.arch, self.seconds, counts), self.dense, self.names)

    def violation(self, current: Mapping[str, float]) -> float:
        """How far the budgets are from their targets beyond ``tolerance`` (0 = every one within it)."""
        return sum(max(0.0, abs(s - self.targets[name]) - self.tolerance) ** 2 for name, s in current.items())


def _remove_in_order(
    budget: _Budget, locked: frozenset[GateKey]
) -> tuple[dict[GateKey, torch.Tensor], UnitCounts, dict[str, float]]:
    """Remove units least probable first until the budgets are met; ``locked`` gates lose none.

    Returns the keep masks (on the CPU), the unit counts they leave and their sparsities.
    """
    arch, scores, min_keep, targets = budget.arch, budget.scores, budget.min_keep, budget.targets
    tolerance, names = budget.tolerance, budget.names
    counts = UnitCounts.of(arch)
    keep = {key: torch.ones(len(s), dtype=torch.bool) for key, s in scores.items()}
    keys = list(scores)
    flat = torch.cat([scores[key].detach().float().cpu() for key in keys])
    owner = torch.cat([torch.full((len(scores[key]),), i) for i, key in enumerate(keys)])
    index = torch.cat([torch.arange(len(scores[key])) for key in keys])
    order = [p for p in torch.argsort(flat, stable=True).tolist() if keys[int(owner[p])] not in locked]
    current = budget.counted(counts)
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
            trial = budget.counted(counts)
            helps = any(trial[name] > current[name] for name in short)
            limited = {"all": names, "short": short, "none": []}[checked]
            overshoots = any(trial[name] > max(targets[name] + tolerance, current[name]) for name in limited)
            if helps and not overshoots:
                keep[key][i] = False
                current = trial
            else:
                values[key[1]] += 1
    return keep, counts, current


@dataclass(frozen=True)
class _Axis:
    """One count the repair step moves: a conv layer's channels, or a Transformer sublayer together
    with its units (value 0: the sublayer removed; k > 0: present with k heads / FFN units), so that
    restoring a removed sublayer with few units is one small move rather than a whole sublayer."""

    units: GateKey | None  # the gate whose kept count is the value
    sublayer: GateKey | None  # the sublayer gate that removes it at value 0
    low: int
    high: int


def _axes(budget: _Budget, keep: Mapping[GateKey, torch.Tensor]) -> list[_Axis]:
    axes = [_Axis(key, None, budget.min_keep.get(key, 0), len(mask)) for key, mask in keep.items() if key[0] == "conv_channels"]
    for units_kind, sublayer_kind in (("heads", "attention"), ("ffn_units", "ffn")):
        for layer in range(budget.arch.num_layers):
            units = (units_kind, layer) if (units_kind, layer) in keep else None
            sublayer = (sublayer_kind, layer) if budget.min_keep.get((sublayer_kind, layer), 1) == 0 and (sublayer_kind, layer) in keep else None
            if sublayer is not None:
                axes.append(_Axis(units, sublayer, 0, len(keep[units]) if units else 1))
            elif units is not None:
                axes.append(_Axis(units, None, budget.min_keep.get(units, 0), len(keep[units])))
    return axes


def _trade_units(budget: _Budget, keep: dict[GateKey, torch.Tensor], counts: UnitCounts) -> None:
    """Move ``keep``/``counts`` towards every budget within ``tolerance`` by moving one or two counts.

    Each round measures every count's effect per unit on the budgets (one unit, and all the way to
    the count's far end: costs are nearly linear in a count, a conv layer's depend on its
    neighbours'), solves for the pair of counts whose moves cancel the budgets' misses, and applies
    the candidate (rounded both ways) whose exact count has the smallest violation, while that
    improves. Units leave least probable first and come back most probable first.
    """
    names, violation = budget.names, budget.violation
    axes = _axes(budget, keep)

    def value(axis: _Axis) -> int:
        if axis.sublayer is not None and getattr(counts, axis.sublayer[0])[axis.sublayer[1]] == 0:
            return 0
        return int(getattr(counts, axis.units[0])[axis.units[1]]) if axis.units is not None else 1

    def set_counts(axis: _Axis, v: int) -> None:
        if axis.sublayer is not None:
            getattr(counts, axis.sublayer[0])[axis.sublayer[1]] = float(v > 0)
        if axis.units is not None and (v > 0 or axis.sublayer is None):
            getattr(counts, axis.units[0])[axis.units[1]] = v

    def evaluate(move: tuple[tuple[_Axis, int], ...]) -> dict[str, float]:
        saved = [(axis, value(axis), int(getattr(counts, axis.units[0])[axis.units[1]]) if axis.units else 0) for axis, _ in move]
        for axis, v in move:
            set_counts(axis, v)
        result = budget.counted(counts)
        for axis, v, units in reversed(saved):
            set_counts(axis, v)
            if axis.units is not None:
                getattr(counts, axis.units[0])[axis.units[1]] = units
        return result

    def apply(axis: _Axis, v: int) -> None:
        if axis.units is not None and (v > 0 or axis.sublayer is None):
            mask, s = keep[axis.units], budget.scores[axis.units].detach().float().cpu()
            while int(mask.sum()) > v:  # drop the least probable kept unit
                mask[int(torch.where(mask, s, torch.inf).argmin())] = False
            while int(mask.sum()) < v:  # bring back the most probable removed unit
                mask[int(torch.where(mask, -torch.inf, s).argmax())] = True
        if axis.sublayer is not None:
            keep[axis.sublayer][0] = v > 0
        set_counts(axis, v)

    current = budget.counted(counts)
    for _ in range(4 * len(axes)):
        if violation(current) == 0.0:
            return
        values = {axis: value(axis) for axis in axes}
        slopes: list[tuple[_Axis, torch.Tensor]] = []  # (axis, effect of +1 on each budget)
        for axis, v in values.items():
            if axis.low == axis.high:  # a gate that must keep all its units cannot move
                continue
            near = v - 1 if v > axis.low else v + 1
            far = axis.low if v - axis.low >= axis.high - v else axis.high
            for w in {near, far} - {v}:
                after = evaluate(((axis, w),))
                slopes.append((axis, torch.tensor([(after[n] - current[n]) / (w - v) for n in names], dtype=torch.float64)))
        miss = torch.tensor([budget.targets[n] - current[n] for n in names], dtype=torch.float64)
        moves: set[tuple[tuple[_Axis, int], ...]] = set()

        def rounded(axis: _Axis, step: float) -> list[int]:
            v = values[axis]
            return sorted({min(axis.high, max(axis.low, v + r)) for r in (math.floor(step), math.ceil(step))} - {v})

        for i, (a, sa) in enumerate(slopes):
            if float(sa @ sa) > 0:
                moves.update(((a, w),) for w in rounded(a, float(sa @ miss / (sa @ sa))))
            for b, sb in slopes[i + 1 :]:
                if b == a:
                    continue
                steps = torch.linalg.lstsq(torch.stack([sa, sb], dim=1), miss.unsqueeze(1)).solution.squeeze(1)
                moves.update(((a, wa), (b, wb)) for wa in rounded(a, float(steps[0])) for wb in rounded(b, float(steps[1])))
        tried = {move: evaluate(move) for move in moves}
        best = min(tried, key=lambda move: violation(tried[move]), default=None)
        if best is None or violation(tried[best]) >= violation(current):
            return
        for axis, v in best:
            apply(axis, v)
        current = tried[best]
