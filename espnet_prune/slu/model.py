"""``PruneSLUModel``: the pruning CTC/attention model plus an utterance-level intent head.

The attention decoder (and CTC) learn ESPnet slurp_entity's target text
``<scenario>_<action> SEP <type> FILL <filler> ... SEP <transcript>``, whose entity tags are the
slot output; the intent head (attention pooling over the encoder output, then a linear layer over
the intent list) is trained with cross-entropy on the ``intent`` input. Loss:

    loss = ESPnet's CTC/attention loss + intent_weight * loss_intent + pruning term
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F
from espnet.nets.pytorch_backend.nets_utils import make_pad_mask
from torch import nn

from espnet_prune.asr.model import MAX_NONFINITE_PARAMETER, Losses, PruneASRModel, init_signature
from espnet_prune.slu.intents import UNK_INTENT, check_intent_list

Encoded = tuple[torch.Tensor, torch.Tensor]  # encoder_out (B, T, D), encoder_out_lens (B,)


class AttentionPooling(nn.Module):
    """forward(xs (B, T, D), lengths (B,)) -> (B, D): a softmax over the valid frames of a learnt
    per-frame score, then the weighted sum of the frames. Padding frames get no weight."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        scores = self.score(xs).squeeze(-1)  # (B, T)
        # a zero length would leave no frame and a NaN softmax: such an utterance pools its first frame
        pad = make_pad_mask(lengths.clamp(min=1), maxlen=xs.size(1)).to(xs.device)
        weights = torch.softmax(scores.masked_fill(pad, float("-inf")), dim=-1)
        return torch.einsum("bt,btd->bd", weights, xs)


class PruneSLUModel(PruneASRModel):
    """:class:`PruneASRModel` with an intent head on the encoder output.

    forward(speech (B, L), speech_lengths (B,), text (B, U), text_lengths (B,), intent (B, 1) intent
    ids, intent_lengths (B,)) -> (loss, stats, batch size); stats add ``loss_intent`` and
    ``acc_intent`` (over the utterances whose intent is in the list; None when there is none).

    Args (besides ESPnetASRModel's, which the task passes; the YAML ``model_conf`` keys):
        intent_list: the intents, ``<unk>`` included (added first when missing); the task fills it
            from ``--intent_list``, so the saved config.yaml carries it.
        intent_weight: weight of the intent cross-entropy in the loss.
    """

    def __init__(self, *args: Any, intent_list: Sequence[str], intent_weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if intent_weight < 0:
            raise ValueError(f"model espnet_prune_slu: intent_weight must be >= 0, got {intent_weight}")
        self.intent_list = check_intent_list(intent_list, "model_conf.intent_list")
        self.unk_intent_id = self.intent_list.index(UNK_INTENT)
        self.intent_weight = intent_weight
        dim = (self.postencoder or self.encoder).output_size()
        self.intent_pooling = AttentionPooling(dim)
        self.intent_classifier = nn.Linear(dim, len(self.intent_list))
        self._captured: Optional[list[Encoded]] = None

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Any:
        """ESPnetASRModel.encode; inside :meth:`capture_encoder_output` its result is also kept, so
        the intent head reuses the encoder pass of ESPnet's forward and of ``Speech2Text``."""
        encoded = super().encode(speech, speech_lengths)
        if self._captured is not None:
            out, lens = encoded
            # with intermediate CTC the encoder returns (out, intermediate outputs)
            self._captured.append((out[0] if isinstance(out, tuple) else out, lens))
        return encoded

    @contextlib.contextmanager
    def capture_encoder_output(self) -> Iterator[list[Encoded]]:
        """Yields a list that collects (encoder_out (B, T, D), encoder_out_lens (B,)) of every
        :meth:`encode` call made inside the block."""
        previous, self._captured = self._captured, []
        try:
            yield self._captured
        finally:
            self._captured = previous

    def intent_logits(self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor) -> torch.Tensor:
        """(B, T, D), (B,) -> logits (B, len(intent_list))."""
        return self.intent_classifier(self.intent_pooling(encoder_out, encoder_out_lens))

    def predict_intent(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (B, N) -> intent ids (B,), never the ``<unk>`` id."""
        masked = logits.clone()
        masked[:, self.unk_intent_id] = float("-inf")
        return masked.argmax(dim=-1)

    def head_intents(self, captured: list[Encoded]) -> list[str]:
        """The intent head's prediction, one name per utterance, from the last encoder output that
        :meth:`capture_encoder_output` collected (beam search encodes once per utterance)."""
        ids = self.predict_intent(self.intent_logits(*captured[-1]))
        return [self.intent_list[int(i)] for i in ids]

    def losses(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        intent: Optional[torch.Tensor] = None,
        intent_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Losses:
        """See the class docstring; ``intent`` comes from the data file ``intent`` (type ``text``)."""
        if intent is None:
            raise ValueError(
                "model espnet_prune_slu needs the intent input: add "
                "--train_data_path_and_name_and_type <data>/intent,intent,text (and the valid one)"
            )
        with self.capture_encoder_output() as captured:
            loss, stats, weight = super().losses(speech, speech_lengths, text, text_lengths, **kwargs)
        encoder_out, encoder_out_lens = captured[-1]
        logits = self.intent_logits(encoder_out, encoder_out_lens)
        targets = intent.view(-1).to(logits.device)  # one id per utterance: (B, 1) -> (B,)
        known = targets != self.unk_intent_id
        if known.any():
            loss_intent = F.cross_entropy(logits[known], targets[known])
            acc_intent = (self.predict_intent(logits[known]) == targets[known]).float().mean()
            stats_intent = {"loss_intent": loss_intent.detach(), "acc_intent": acc_intent.detach()}
        else:
            # a zero that still reaches the head's parameters, so every step has the same graph (DDP)
            loss_intent = logits.sum() * 0.0
            stats_intent = {"loss_intent": None, "acc_intent": None}
        loss = loss + self.intent_weight * loss_intent
        return loss, {**stats, **stats_intent, "loss": loss.detach()}, weight


PruneSLUModel.__init__.__signature__ = init_signature(  # type: ignore[attr-defined]
    MAX_NONFINITE_PARAMETER,
    inspect.Parameter("intent_list", inspect.Parameter.KEYWORD_ONLY, annotation="Sequence[str]"),
    inspect.Parameter("intent_weight", inspect.Parameter.KEYWORD_ONLY, default=1.0, annotation="float"),
)
