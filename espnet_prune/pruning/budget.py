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
met and the other short: every unit it would remove next costs both. A repair step then trades
units of different kinds, whose cost ratios differ (a conv channel is mostly MACs, an FFN unit
mostly parameters), until every budget is within ``tolerance`` or no trade gets closer (measured
on the synthetic recipes' selfcheck: size_mac 0.3 had counted 0.291 / 0.420 without it).
"""

from __future__ import annotations

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


def _trade_units(budget: _Budget, keep: dict[GateKey, torch.Tensor], counts: UnitCounts) -> None:
    """Move ``keep``/``counts`` towards every budget within ``tolerance`` by single and paired moves.

    A move removes the least probable kept unit of one gate, restores the most probable removed unit
    of another, or both. Units of one gate cost the same, so a move is named by its gates; its effect
    is predicted from each gate's one-unit effect (costs are nearly additive; a conv channel's
    depends on its neighbours) and the best predicted moves are checked with the exact count.
    """

    scores, min_keep, names, violation = budget.scores, budget.min_keep, budget.names, budget.violation

    def counted() -> dict[str, float]:
        return budget.counted(counts)

    def shift(key: GateKey, by: int) -> None:
        getattr(counts, key[0])[key[1]] += by

    def effect(key: GateKey, by: int, base: dict[str, float]) -> dict[str, float]:
        shift(key, by)
        after = counted()
        shift(key, -by)
        return {n: after[n] - base[n] for n in names}

    def apply(key: GateKey, by: int) -> None:
        s = scores[key].detach().float().cpu()
        if by < 0:  # drop the least probable kept unit
            i = int(torch.where(keep[key], s, torch.inf).argmin())
            keep[key][i] = False
        else:  # bring back the most probable removed unit
            i = int(torch.where(keep[key], -torch.inf, s).argmax())
            keep[key][i] = True
        shift(key, by)

    current = counted()
    for _ in range(sum(len(mask) for mask in keep.values())):  # each move changes at least one unit
        if violation(current) == 0.0:
            return
        removable = [k for k in keep if int(keep[k].sum()) > min_keep.get(k, 0)]
        restorable = [k for k in keep if not bool(keep[k].all())]
        deltas = {(k, -1): effect(k, -1, current) for k in removable}
        deltas.update({(k, 1): effect(k, 1, current) for k in restorable})
        moves: list[tuple[tuple[GateKey, int], ...]] = [(m,) for m in deltas]
        moves += [(a, b) for a in deltas if a[1] < 0 for b in deltas if b[1] > 0 and b[0] != a[0]]
        predicted = sorted(
            moves, key=lambda ms: violation({n: current[n] + sum(deltas[m][n] for m in ms) for n in names})
        )
        for move in predicted[:8]:
            for key, by in move:
                shift(key, by)
            trial = counted()
            for key, by in move:
                shift(key, -by)
            if violation(trial) < violation(current):
                for key, by in move:
                    apply(key, by)
                current = trial
                break
        else:
            return
