"""HardConcrete (L0) gates: the stochastic masks that decide which units survive.

Louizos et al., "Learning Sparse Neural Networks through L0 Regularization" (2018), with the
deterministic test-time mask of FLOP / CoFiPruning: keep the expected number of units, ranked by
their soft gate values.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class HardConcreteGate(nn.Module):
    """A vector of ``num_units`` HardConcrete gates.

    In training, ``forward()`` draws one mask in [0, 1] per unit (exact zeros and ones occur with
    positive probability thanks to the stretch-and-clamp); in eval it returns the deterministic
    mask. Which units that mask zeroes is decided for all gates at once by the upstream's budget
    (:func:`espnet_prune.pruning.budget.select_units`); a gate outside any budget zeroes the
    ``round(num_units - expected L0)`` units with the smallest soft values.

    Args:
        num_units: number of gated units (channels, heads, FFN units; 1 for a whole sublayer).
        init_drop_rate: initial probability-like drop rate; ``log_alpha`` starts at
            ``log((1 - r) / r)`` so that small rates start with (almost) every gate open.
        temperature: HardConcrete temperature beta.
        stretch: the distribution is stretched to (-stretch, 1 + stretch) before clamping.
        min_keep: the deterministic mask keeps at least this many units (a conv layer must keep
            one channel or the signal path is cut).
    """

    def __init__(
        self,
        num_units: int,
        init_drop_rate: float = 0.01,
        temperature: float = 2.0 / 3.0,
        stretch: float = 0.1,
        min_keep: int = 0,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if num_units < 1:
            raise ValueError(f"a gate needs at least one unit, got num_units={num_units}")
        if not 0.0 < init_drop_rate < 1.0:
            raise ValueError(f"init_drop_rate must be in (0, 1), got {init_drop_rate}")
        if not 0 <= min_keep <= num_units:
            raise ValueError(f"min_keep must be in [0, {num_units}], got {min_keep}")
        self.num_units = num_units
        self.temperature = temperature
        self.limit_left = -stretch
        self.limit_right = 1.0 + stretch
        self.min_keep = min_keep
        # log P(gate != 0) = logsigmoid(log_alpha + shift): the stretched distribution's mass above 0.
        self.shift = -temperature * math.log(-self.limit_left / self.limit_right)
        mean = math.log(1.0 - init_drop_rate) - math.log(init_drop_rate)
        self.log_alpha = nn.Parameter(torch.empty(num_units).normal_(mean, init_std))
        self.mask: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"num_units={self.num_units}, min_keep={self.min_keep}"

    def prob_nonzero(self) -> torch.Tensor:
        """P(gate_i > 0) for every unit, shape (num_units,): the expected L0 norm, differentiable."""
        return torch.sigmoid(self.log_alpha + self.shift)

    def sample(self) -> torch.Tensor:
        """One stochastic mask, shape (num_units,), differentiable w.r.t. ``log_alpha``."""
        eps = 1e-6
        u = torch.empty_like(self.log_alpha).uniform_(eps, 1.0 - eps)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / self.temperature)
        s = s * (self.limit_right - self.limit_left) + self.limit_left
        return s.clamp(0.0, 1.0)

    def deterministic_mask(self, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The test-time mask, shape (num_units,): soft values, exactly zero for pruned units.

        ``keep`` (bool, (num_units,)) says which units survive; without it, the
        ``round(expected L0)`` units with the largest soft values (at least ``min_keep``).
        """
        # 0.8 follows FLOP/CoFi: it sharpens the soft values of the kept gates towards 1.
        soft = torch.sigmoid(self.log_alpha / self.temperature * 0.8)
        if keep is not None:
            return soft * keep.to(soft.dtype)
        expected_kept = float(self.prob_nonzero().detach().sum())
        num_zeros = min(round(self.num_units - expected_kept), self.num_units - self.min_keep)
        if num_zeros > 0:
            dropped = torch.topk(soft, k=num_zeros, largest=False).indices
            soft = soft.index_fill(0, dropped, 0.0)
        return soft

    def forward(self, keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.sample() if self.training else self.deterministic_mask(keep)

    def resample(self, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Draw the mask that every module using this gate reads during one forward pass."""
        self.mask = self(keep)
        return self.mask

    @torch.no_grad()
    def set_keep(self, keep: torch.Tensor, strength: float = 12.0) -> None:
        """Open the gates where ``keep`` is true and close the others (tests, random pruning)."""
        keep = keep.to(dtype=torch.bool, device=self.log_alpha.device)
        if keep.shape != self.log_alpha.shape:
            raise ValueError(f"keep has shape {tuple(keep.shape)}, gate has {self.num_units} units")
        self.log_alpha.copy_(torch.where(keep, strength, -strength))
