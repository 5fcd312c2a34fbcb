"""Layer-wise distillation from a teacher upstream, while pruning (CoFiPruning, DPHuBERT) or not.

The teacher (the upstream before pruning, or any checkpoint the loader reads) runs once per batch
under ``no_grad`` in eval mode; learnable linear projections map student hidden states to the
teacher's width, and the loss compares them layer by layer:

* ``l1_cosine`` (default): mean L1 distance minus ``log sigmoid(cosine similarity)`` per frame,
  DistilHuBERT's loss, which DPHuBERT (the same first author as HJ-Pruning) distils SSL speech
  models with: L1 matches the scale of each dimension, the cosine term the direction, which the
  L1 alone lets drift when the hidden states are large.
* ``l1``, ``l2`` (mean squared error; CoFi's), ``cosine`` (``-log sigmoid(cos)`` alone).

Layer maps: fixed pairs ``[[student, teacher], ...]`` (hidden-state indices, 0 = the CNN's projected
features), or ``dynamic``: CoFi's matching, each of the teacher's ``teacher_layers`` to the student
layer whose projection is nearest to it (no gradient through the choice; every student layer is a
candidate once its own attention and FFN may have been pruned away).

The loss's weight follows a schedule (:func:`distill_weight`) over the training steps the module
counts in a saved buffer, so that a resumed run goes on where it stopped. The teacher is held outside
the module tree, so it is never saved in the student's checkpoint and never sees the optimiser.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("l1_cosine", "l1", "l2", "cosine")
LayerMap = Union[str, Sequence[Sequence[int]]]


def frame_loss(student: torch.Tensor, teacher: torch.Tensor, loss: str) -> torch.Tensor:
    """(B, T, D) x 2 -> (B, T): the distillation loss of each frame."""
    if loss not in LOSSES:
        raise ValueError(f"unknown distillation loss {loss!r}; choose from {list(LOSSES)}")
    terms = []
    if loss in ("l1", "l1_cosine"):
        terms.append((student - teacher).abs().mean(-1))
    if loss == "l2":
        terms.append((student - teacher).pow(2).mean(-1))
    if loss in ("cosine", "l1_cosine"):
        terms.append(-F.logsigmoid(F.cosine_similarity(student, teacher, dim=-1)))
    return sum(terms)


def distill_weight(step: int, weight: float, warmup_steps: int = 0, decay_steps: int = 0, final_weight: Optional[float] = None) -> float:
    """The distillation loss's weight after ``step`` training steps, scheduled like the pruning target:
    linear from 0 to ``weight`` over ``warmup_steps``, then linear to ``final_weight`` (default
    ``weight``: constant) over ``decay_steps``, then held."""
    if min(weight, warmup_steps, decay_steps) < 0 or (final_weight is not None and final_weight < 0):
        raise ValueError("distillation weight, final_weight, warmup_steps and decay_steps must be >= 0")
    if step < warmup_steps:
        return weight * step / warmup_steps
    final = weight if final_weight is None else final_weight
    if decay_steps == 0:
        return final
    return weight + (final - weight) * min(1.0, (step - warmup_steps) / decay_steps)


class LayerDistillation(nn.Module):
    """Distillation loss between a student's and a frozen teacher's hidden states.

    Args:
        teacher: the teacher upstream, ``forward(wavs (B, L), lengths (B,)) -> (hidden states, lengths)``;
            kept outside the module tree (not saved, not trained), in eval mode.
        student_layers: how many hidden states the student has (layers + 1).
        student_dim, teacher_dim: their widths (a projection maps one to the other).
        layers: fixed ``[[student, teacher], ...]`` pairs, or ``"dynamic"``.
        teacher_layers: with ``"dynamic"``, which teacher hidden states are matched (default: every
            third from the last, CoFi's choice for a 12-layer model: 12, 9, 6, 3).
        loss: one of ``LOSSES``.
        weight, warmup_steps, decay_steps, final_weight: the loss weight's schedule (:func:`distill_weight`).
    """

    def __init__(
        self,
        teacher: nn.Module,
        student_layers: int,
        student_dim: int,
        teacher_dim: int,
        layers: LayerMap = "dynamic",
        teacher_layers: Optional[Sequence[int]] = None,
        loss: str = "l1_cosine",
        weight: float = 1.0,
        warmup_steps: int = 0,
        decay_steps: int = 0,
        final_weight: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.schedule = dict(weight=weight, warmup_steps=warmup_steps, decay_steps=decay_steps, final_weight=final_weight)
        distill_weight(0, **self.schedule)  # raises on a negative setting
        if loss not in LOSSES:
            raise ValueError(f"unknown distillation loss {loss!r}; choose from {list(LOSSES)}")
        teacher_count = teacher.num_layers
        if layers == "dynamic":
            teacher_layers = list(teacher_layers or range(teacher_count - 1, 0, -3))
            pairs: list[tuple[Optional[int], int]] = [(None, t) for t in teacher_layers]
        elif isinstance(layers, str):
            raise ValueError(f"distillation layers must be 'dynamic' or [[student, teacher], ...], got {layers!r}")
        else:
            pairs = [(int(s), int(t)) for s, t in layers]
            if not pairs:
                raise ValueError("distillation layers: no [student, teacher] pair")
        for s, t in pairs:
            if not 0 <= t < teacher_count or (s is not None and not 0 <= s < student_layers):
                raise ValueError(
                    f"distillation pair (student {s}, teacher {t}) does not map: the student has hidden states "
                    f"0..{student_layers - 1} of width {student_dim}, the teacher 0..{teacher_count - 1} of width {teacher_dim}"
                )
        object.__setattr__(self, "teacher", teacher.eval().requires_grad_(False))
        self.pairs = pairs
        self.loss = loss
        self.projections = nn.ModuleList(nn.Linear(student_dim, teacher_dim) for _ in pairs)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def next_weight(self) -> float:
        """Count one training step and return the loss weight at it."""
        self.step += 1
        return distill_weight(int(self.step), **self.schedule)

    @torch.no_grad()
    def teacher_states(self, wavs: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        teacher = self.teacher
        if next(teacher.parameters()).device != wavs.device:
            teacher.to(wavs.device)
        teacher.eval()
        states, _ = teacher(wavs, lengths)
        return states

    def forward(
        self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], frames: torch.Tensor
    ) -> tuple[torch.Tensor, list[int]]:
        """Hidden states (each (B, T, D)) and valid frames per utterance (B,) -> (loss, student layer per pair).

        The loss is the mean over pairs of the mean over valid frames.
        """
        t_max = min(student[0].size(1), teacher[0].size(1))
        mask = (torch.arange(t_max, device=frames.device)[None, :] < frames[:, None]).to(student[0].dtype)
        total, chosen = student[0].new_zeros(()), []
        for (s, t), projection in zip(self.pairs, self.projections):
            target = teacher[t][:, :t_max]
            if s is None:  # the nearest student layer, by the same loss
                with torch.no_grad():
                    costs = [
                        (frame_loss(projection(h[:, :t_max]), target, self.loss) * mask).sum() for h in student
                    ]
                s = int(torch.stack(costs).argmin())
            chosen.append(s)
            per_frame = frame_loss(projection(student[s][:, :t_max]), target, self.loss)
            total = total + (per_frame * mask).sum() / mask.sum().clamp(min=1)
        return total / len(self.pairs), chosen
