"""``ESPnetASRModel`` whose training loss includes the frontend's pruning objective."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any, Optional

import torch
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet_prune.frontend.s3prl_prune import S3prlPruneFrontend

logger = logging.getLogger(__name__)

Losses = tuple[torch.Tensor, dict[str, Optional[torch.Tensor]], torch.Tensor]


class NonFiniteLossError(RuntimeError):
    """Too many training batches had a NaN or infinite loss: the run is stopped."""


class PruneASRModel(ESPnetASRModel):
    """ESPnet's CTC/attention model; with a pruning or distilling ``s3prl_prune`` frontend, ``loss``
    gets its :meth:`~S3prlPruneFrontend.auxiliary_loss` and ``stats`` its statistics (``loss_pruning``,
    ``sparsity_*``, ``lambda*``, ``remaining_*``, ``loss_distill``), which ESPnet's reporter logs and
    plots like the other losses.

    A training batch whose loss is NaN or infinite is skipped: its loss is returned as NaN with
    NaN gradients everywhere, so ESPnet's trainer sees a non-finite gradient norm and does not
    update the model (ESPnet's reporter leaves non-finite values out of its means). Each one is logged with its utterance ids and counted in the stat ``nonfinite_skipped`` (the
    fraction of batches skipped). After more than ``max_nonfinite_losses`` of them in one run
    (counted from the start of this process, so a resumed run starts again from 0) training
    stops with :class:`NonFiniteLossError`.

    Args (besides ESPnetASRModel's; the YAML ``model_conf`` keys):
        max_nonfinite_losses: how many skipped batches a run tolerates.
    """

    def __init__(self, *args: Any, max_nonfinite_losses: int = 20, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if max_nonfinite_losses < 0:
            raise ValueError(f"model_conf.max_nonfinite_losses must be >= 0, got {max_nonfinite_losses}")
        self.max_nonfinite_losses = max_nonfinite_losses
        self.nonfinite_losses = 0

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        **kwargs,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """speech (B, L), text (B, U) -> (loss, stats, batch size) as ESPnetASRModel."""
        loss, stats, weight = self.losses(speech, speech_lengths, text, text_lengths, **kwargs)
        if self.training:
            loss, stats = self._skip_if_nonfinite(loss, stats, kwargs.get("utt_id"))
        return force_gatherable((loss, stats, weight), loss.device)

    def losses(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, text: torch.Tensor, text_lengths: torch.Tensor, **kwargs
    ) -> Losses:
        """ESPnet's losses plus the frontend's pruning and distillation terms: (loss, stats, batch size)."""
        loss, stats, weight = super().forward(speech, speech_lengths, text, text_lengths, **kwargs)
        auxiliary = self.frontend.auxiliary_loss() if isinstance(self.frontend, S3prlPruneFrontend) else None
        if auxiliary is None:
            return loss, stats, weight
        extra, extra_stats = auxiliary
        loss = loss + extra
        return loss, {**stats, **extra_stats, "loss": loss.detach()}, weight

    def _skip_if_nonfinite(
        self, loss: torch.Tensor, stats: dict[str, Optional[torch.Tensor]], utt_ids: Optional[Sequence[str]]
    ) -> tuple[torch.Tensor, dict[str, Optional[torch.Tensor]]]:
        if torch.isfinite(loss).all():
            return loss, {**stats, "nonfinite_skipped": loss.new_tensor(0.0)}
        self.nonfinite_losses += 1
        terms = ", ".join(sorted(k for k, v in stats.items() if v is not None and not torch.isfinite(v).all()))
        where = f"utterances {', '.join(utt_ids)}" if utt_ids else "utterances unknown"
        if self.nonfinite_losses > self.max_nonfinite_losses:
            raise NonFiniteLossError(
                f"training stopped: {self.nonfinite_losses} batches had a NaN or infinite loss, more than "
                f"model_conf.max_nonfinite_losses ({self.max_nonfinite_losses}); the last one ({terms}) was "
                f"{where}. Check those utterances' audio and transcripts, or lower the learning rate."
            )
        logger.warning(
            "non-finite training loss (%s) in the batch of %s: skipped (%d so far, model_conf.max_nonfinite_losses %d)",
            terms, where, self.nonfinite_losses, self.max_nonfinite_losses,
        )
        # every gradient becomes NaN, so ESPnet's trainer skips this update (its grad-norm check)
        return loss * loss.new_tensor(float("nan")), {**stats, "nonfinite_skipped": loss.new_tensor(1.0)}

    def collect_feats(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, text: torch.Tensor, text_lengths: torch.Tensor, **kwargs
    ) -> dict[str, torch.Tensor]:
        """Features for ``--collect_stats``; none without a ``normalize`` layer.

        The statistics are only read by ``global_mvn``, and computing them runs the whole
        upstream over the training set; the shape files ESPnet needs come from the raw data.
        """
        if self.normalize is None:
            return {}
        return super().collect_feats(speech, speech_lengths, text, text_lengths, **kwargs)


def init_signature(*own: inspect.Parameter) -> inspect.Signature:
    """ESPnetASRModel's ``__init__`` signature followed by keyword-only parameters ``own``.

    ESPnet's ``--print_config`` lists a model's keys from its ``__init__`` signature: a subclass
    taking ``*args, **kwargs`` shows its parent's keys and its own this way.
    """
    parent = list(inspect.signature(ESPnetASRModel.__init__).parameters.values())
    return inspect.Signature(parent + list(own))


MAX_NONFINITE_PARAMETER = inspect.Parameter(
    "max_nonfinite_losses", inspect.Parameter.KEYWORD_ONLY, default=20, annotation="int"
)
PruneASRModel.__init__.__signature__ = init_signature(MAX_NONFINITE_PARAMETER)  # type: ignore[attr-defined]
