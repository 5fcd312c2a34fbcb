"""ESPnet frontend ``s3prl_prune``: a prunable wav2vec2/HuBERT/WavLM upstream plus S3PRL's featurizer.

Its constructor arguments are the YAML ``frontend_conf`` keys. With ``pruning_conf`` the upstream
gets HardConcrete gates and the frontend holds the :class:`PruningObjective` as a submodule, so
its lambdas and warm-up step are saved in ESPnet's checkpoints; with ``distill_conf`` it holds a
:class:`LayerDistillation` from a teacher upstream, pruned or not. The model adds
:meth:`S3prlPruneFrontend.auxiliary_loss` to the training loss.
"""

from __future__ import annotations

import inspect
import os
from typing import Optional, Union

import humanfriendly
import torch
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from typeguard import typechecked

from espnet_prune.pruning.distill import LayerDistillation
from espnet_prune.pruning.objective import PruningObjective, gate_conf_for

# pruning_conf keys besides "gate_conf": the objective's constructor arguments (except the gates)
PRUNING_KEYS = tuple(p for p in inspect.signature(PruningObjective).parameters if p != "gates")
# distill_conf keys: the teacher's checkpoint and LayerDistillation's arguments, less those the frontend fills in
_FILLED_IN = ("teacher", "student_layers", "student_dim", "teacher_dim")
DISTILL_KEYS = ("teacher_ckpt", *(p for p in inspect.signature(LayerDistillation).parameters if p not in _FILLED_IN))
PRETRAINING_ONLY = ("mask_emb", "label_embs_concat")  # attributes of S3PRL's wav2vec2/HuBERT/WavLM models


class S3prlPruneFrontend(AbsFrontend):
    """forward(input (B, L) 16 kHz waveform, input_lengths (B,)) -> (feats (B, T, D), feats_lens (B,)).

    Args:
        upstream_ckpt: any checkpoint ``load_upstream`` reads: S3PRL's converted ``.pt``, a
            fairseq ``.pt``, a Hugging Face transformers directory, an espnet_prune ``.safetensors``.
        pruning_conf: ``method``, ``target``, ``targets``, ``warmup_steps``, ``macs_seconds``,
            ``reg_lr``, ``damping``, ``damping_after_warmup`` (see :class:`PruningObjective`) and
            optionally ``gate_conf`` (see :class:`UpstreamGates`); None trains without pruning.
        distill_conf: layer-wise distillation from a teacher, with or without pruning: ``teacher_ckpt``
            (default: ``upstream_ckpt``, the model before fine-tuning), ``weight`` (of its loss;
            default 1) and its schedule, ``layers``, ``teacher_layers``, ``loss`` (see
            :class:`LayerDistillation`); None trains without a teacher.
        multilayer_feature: learnt weighted sum of all hidden states (S3PRL's ``Featurizer``);
            otherwise the hidden state of ``layer``.
        layer: which hidden state when not ``multilayer_feature`` (-1 = the encoder's output).
        train_cnn: train the conv feature extractor (must be true when its channels are gated).
        fs: sampling rate; the upstreams take 16 kHz only.
    """

    @typechecked
    def __init__(
        self,
        upstream_ckpt: str,
        pruning_conf: Optional[dict] = None,
        distill_conf: Optional[dict] = None,
        multilayer_feature: bool = False,
        layer: int = -1,
        train_cnn: bool = True,
        fs: Union[int, str] = 16000,
    ) -> None:
        from s3prl.nn import Featurizer

        from espnet_prune.pruning.upstream import load_upstream

        super().__init__()
        if isinstance(fs, str):
            fs = humanfriendly.parse_size(fs)
        if fs != 16000:
            raise ValueError(f"frontend s3prl_prune: the upstream takes 16 kHz audio, got fs={fs}")
        if not os.path.exists(upstream_ckpt):
            raise FileNotFoundError(f"frontend s3prl_prune: upstream_ckpt {upstream_ckpt!r} does not exist")
        if multilayer_feature and layer != -1:
            raise ValueError("frontend s3prl_prune: set either multilayer_feature or layer, not both")
        self.upstream = load_upstream(upstream_ckpt)
        # as ESPnet's S3prlFrontend: no gradient scaling in the CNN; train_cnn freezes it instead
        self.upstream.model.feature_grad_mult = 1.0
        # pretraining-only parameters (the masked frames' embedding, HuBERT's label embeddings) get no
        # gradient when fine-tuning; frozen, distributed data parallel needs no unused-parameter search
        for name in PRETRAINING_ONLY:
            if isinstance(getattr(self.upstream.model, name, None), torch.nn.Parameter):
                getattr(self.upstream.model, name).requires_grad = False
        num_states = self.upstream.num_layers
        if not -num_states <= layer < num_states:
            raise ValueError(f"frontend s3prl_prune: layer {layer} out of range for {num_states} hidden states")
        self.layer = layer
        self.featurizer = Featurizer(self.upstream) if multilayer_feature else None
        self._distill_loss: Optional[torch.Tensor] = None
        self.distill = self._attach_distillation(distill_conf, upstream_ckpt) if distill_conf is not None else None
        self.objective = self._attach_pruning(pruning_conf) if pruning_conf is not None else None
        if not train_cnn:
            if self.upstream.gates is not None and len(self.upstream.gates.conv_channels) > 0:
                raise ValueError("frontend s3prl_prune: train_cnn must be true when the CNN's channels are gated")
            for p in self.upstream.model.feature_extractor.parameters():
                p.requires_grad = False

    def _attach_pruning(self, conf: dict) -> PruningObjective:
        if "distill" in conf:  # its place until December 2026
            raise ValueError("frontend s3prl_prune: pruning_conf.distill is now frontend_conf.distill_conf (same keys)")
        unknown = sorted(set(conf) - set(PRUNING_KEYS) - {"gate_conf"})
        if unknown:
            raise ValueError(f"frontend s3prl_prune: unknown pruning_conf keys {unknown}; allowed: {[*PRUNING_KEYS, 'gate_conf']}")
        conf = dict(conf)
        gate_conf = conf.pop("gate_conf", None) or {}
        method = conf.get("method", inspect.signature(PruningObjective).parameters["method"].default)
        # The gates draw their initial values on a copy of the global RNG: what is built after the
        # frontend (encoder, decoder, CTC) then starts the same whatever the method, as without
        # pruning, so the models of a sweep differ by their pruning only. (Before, a method with
        # fewer gates shifted the heads' initialisation; one such run never converged.)
        with torch.random.fork_rng(devices=[]):
            gates = self.upstream.attach_gates(**gate_conf_for(method, **gate_conf))
        return PruningObjective(gates, **conf)

    def _attach_distillation(self, conf: dict, upstream_ckpt: str) -> LayerDistillation:
        from espnet_prune.pruning.upstream import load_upstream

        unknown = sorted(set(conf) - set(DISTILL_KEYS))
        if unknown:
            raise ValueError(f"frontend s3prl_prune: unknown distill_conf keys {unknown}; allowed: {list(DISTILL_KEYS)}")
        conf = dict(conf)
        teacher_ckpt = conf.pop("teacher_ckpt", None) or upstream_ckpt
        if not os.path.exists(teacher_ckpt):
            raise FileNotFoundError(f"frontend s3prl_prune: distill_conf.teacher_ckpt {teacher_ckpt!r} does not exist")
        # Building the teacher and the projections draws on a copy of the global RNG, as the gates do:
        # the encoder, decoder and CTC built after the frontend then start as without a teacher, so a
        # "+distill" model differs from its plain twin by the teacher only. (Before, they started from
        # other weights: distillation at weight 0.1 and 1.0 followed the same loss curve, and a plain
        # twin's seed-to-seed spread was read as the teacher's effect.)
        with torch.random.fork_rng(devices=[]):
            teacher = load_upstream(teacher_ckpt)
            try:
                return LayerDistillation(
                    teacher, self.upstream.num_layers, self.upstream.hidden_sizes[0], teacher.hidden_sizes[0], **conf
                )
            except ValueError as error:
                raise ValueError(f"frontend s3prl_prune: distill_conf: {error}") from None

    def output_size(self) -> int:
        return self.upstream.hidden_sizes[0]

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hs, hs_lens = self.upstream(input, input_lengths)
        if self.distill is not None and self.training:  # auxiliary_loss() adds it to this batch's loss
            teacher = self.distill.teacher_states(input, input_lengths)
            self._distill_loss = self.distill(hs, teacher, hs_lens[0])[0]
        if self.featurizer is not None:
            return self.featurizer(hs, hs_lens)
        return hs[self.layer], hs_lens[self.layer]

    def auxiliary_loss(self) -> Optional[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """``(loss, stats)``: the pruning objective's Lagrangian term (stat ``loss_pruning``) plus the
        weighted distillation loss of the last training forward (stat ``loss_distill``, unweighted);
        a training call advances their warm-ups. None when neither pruning nor distilling."""
        terms, stats = [], {}
        if self.objective is not None:
            reg, stats = self.objective()
            terms.append(reg)
            stats = {**stats, "loss_pruning": reg.detach()}
        if self._distill_loss is not None:
            weight = self.distill.next_weight()
            terms.append(weight * self._distill_loss)
            stats = {**stats, "loss_distill": self._distill_loss.detach(), "distill_weight": self._distill_loss.new_tensor(weight)}
            self._distill_loss = None
        return (sum(terms), stats) if terms else None

    def shrink(self) -> None:
        """Physically prune the upstream by the gates' final masks and drop the objective."""
        self.upstream.shrink()
        self.objective = None
        self.distill = None
