"""``ESPnetASRModel`` whose training loss includes the frontend's pruning objective."""

from __future__ import annotations

import torch
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet_prune.frontend.s3prl_prune import S3prlPruneFrontend


class PruneASRModel(ESPnetASRModel):
    """ESPnet's CTC/attention model; with a pruning ``s3prl_prune`` frontend, ``loss`` gets the
    Lagrangian term and ``stats`` the objective's statistics (``loss_pruning``, ``sparsity_*``,
    ``lambda*``, ``remaining_*``), which ESPnet's reporter logs and plots like the other losses.
    """

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        **kwargs,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """speech (B, L), text (B, U) -> (loss, stats, batch size) as ESPnetASRModel."""
        loss, stats, weight = super().forward(speech, speech_lengths, text, text_lengths, **kwargs)
        pruning = self.frontend.pruning_loss() if isinstance(self.frontend, S3prlPruneFrontend) else None
        if pruning is None:
            return loss, stats, weight
        reg, reg_stats = pruning
        loss = loss + reg
        stats = {**stats, **reg_stats, "loss_pruning": reg.detach(), "loss": loss.detach()}
        return force_gatherable((loss, stats, weight), loss.device)

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
