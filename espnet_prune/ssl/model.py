"""HuBERT's masked prediction as an ESPnet model, on S3PRL's own ``HubertModel`` and its heads.

The forward pass is ``HubertModel.forward``'s, step for step, with one difference: padding is
taken per CNN frame from the utterance lengths. S3PRL reduces a sample-level padding mask by
reshaping, which can count a frame past an utterance's end as speech, and that frame has no label.
Every trained tensor is a ``HubertModel`` parameter, so the trained model is a HuBERT checkpoint
in S3PRL's converted format (``espnet_prune.bin.export_upstream``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet_prune.pruning.checkpoint import build_model, read_checkpoint
from espnet_prune.ssl.targets import conv_frames


class HubertPretrainModel(AbsESPnetModel):
    """Masked prediction of frame labels (cluster ids) from a masked HuBERT input.

    forward(speech (B, L), speech_lengths (B,), labels (B, T) padded with -1, labels_lengths (B,))
    -> (loss, stats, batch size); T must be the CNN's frame count of each utterance.

    Args:
        upstream_ckpt: the dense HuBERT checkpoint to start from (S3PRL format, with pretraining
            heads sized for the labels: ``make_upstream --arch hubert --num_classes K``).
        features_pen_weight: weight of the CNN output's mean square (HuBERT's 10).
    """

    def __init__(self, upstream_ckpt: str, features_pen_weight: float = 10.0) -> None:
        super().__init__()
        ckpt = read_checkpoint(upstream_ckpt)
        if ckpt.model_type != "hubert":
            raise ValueError(f"{upstream_ckpt}: a {ckpt.model_type} checkpoint; masked prediction needs HuBERT")
        self.hubert = build_model(ckpt, source=upstream_ckpt, pretraining_heads=True)
        if len(self.hubert.num_classes) != 1:
            raise ValueError(f"{upstream_ckpt}: {len(self.hubert.num_classes)} label sets; one is supported")
        if self.hubert.mask_prob <= 0:
            raise ValueError(f"{upstream_ckpt}: mask_prob {self.hubert.mask_prob}; masked prediction needs masks")
        self.num_classes = self.hubert.num_classes[0]
        self.conv_layers = eval(ckpt.model_cfg["conv_feature_layers"])  # noqa: S307 (fairseq's own format)
        self.normalize_waveform = bool(ckpt.task_cfg.get("normalize", False))
        self.features_pen_weight = features_pen_weight

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        labels: torch.Tensor,
        labels_lengths: torch.Tensor,
        **kwargs,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        frames = conv_frames(speech_lengths, self.conv_layers)
        if not torch.equal(frames, labels_lengths):
            raise ValueError(
                f"labels do not match the CNN's frames: {labels_lengths.tolist()} labels for "
                f"{frames.tolist()} frames (were they dumped for this CNN? see hubert_labels)"
            )
        if labels.max() >= self.num_classes:
            raise ValueError(f"label {int(labels.max())} for a head of {self.num_classes} classes")
        hubert = self.hubert
        if self.normalize_waveform:
            speech = torch.stack([_normalized(s, n) for s, n in zip(speech, speech_lengths)])
        features = hubert.forward_features(speech)  # (B, C, T)
        num_frames = features.size(2)
        padding = torch.arange(num_frames, device=speech.device)[None, :] >= frames[:, None]  # (B, T)
        valid = ~padding
        features_pen = features.float().pow(2).mean(1)[valid].mean()
        features = hubert.layer_norm(features.transpose(1, 2))  # (B, T, C)
        if hubert.post_extract_proj is not None:
            features = hubert.post_extract_proj(features)
        x, mask = hubert.apply_mask(hubert.dropout_input(features), padding, None)  # mask (B, T)
        x, _ = hubert.encoder(x, padding_mask=padding)  # (B, T, D)
        masked = mask & valid
        proj = hubert.final_proj(x[masked])  # (N, final_dim)
        positives = hubert.label_embs_concat[labels[masked]]  # (N, final_dim)
        negatives = hubert.label_embs_concat.unsqueeze(1).expand(-1, proj.size(0), -1)  # (K, N, final_dim)
        if hubert.target_glu is not None:
            positives, negatives = hubert.target_glu(positives), hubert.target_glu(negatives)
        # (N, 1 + K): the target's similarity first, then every other class's (the target's own is -inf)
        logits = hubert.compute_nce(proj, positives, negatives)
        target = logits.new_zeros(len(logits), dtype=torch.long)
        loss_m = F.cross_entropy(logits.float(), target)
        loss = loss_m + self.features_pen_weight * features_pen
        with torch.no_grad():
            acc_m = (logits.argmax(1) == 0).float().mean()
        stats = dict(
            loss=loss.detach(),
            loss_m=loss_m.detach(),
            acc_m=acc_m,
            features_pen=features_pen.detach(),
            masked_frac=masked.sum() / valid.sum(),
        )
        loss, stats, weight = force_gatherable((loss, stats, torch.tensor(len(speech))), loss.device)
        return loss, stats, weight

    def collect_feats(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs
    ) -> dict[str, torch.Tensor]:
        """The waveform: the model has no separate feature extraction to normalise."""
        return {"feats": speech, "feats_lengths": speech_lengths}


def _normalized(wav: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the utterance (its padding stays 0). wav (L,) -> (L,)."""
    out = torch.zeros_like(wav)
    out[:length] = F.layer_norm(wav[:length], (int(length),))
    return out
