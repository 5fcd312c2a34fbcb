"""ESPnet's ASR task with the ``s3prl_prune`` frontend, the ``espnet_prune`` model and pruning groups.

espnet2's ``ASRTask.build_model`` reads its module-level ``ClassChoices``, so the new choices are
registered there when this module is imported; then ESPnet's own training, ``Speech2Text`` and
``build_model_from_file`` build pruned models too (``espnet_prune.bin.asr_*`` import this first).
"""

from __future__ import annotations

import argparse

import torch
from espnet2.tasks import asr as espnet_asr
from espnet2.tasks.abs_task import optim_classes
from espnet2.tasks.asr import ASRTask
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet_prune.asr.model import PruneASRModel
from espnet_prune.frontend.s3prl_prune import S3prlPruneFrontend
from espnet_prune.pruning.objective import param_groups

espnet_asr.frontend_choices.classes["s3prl_prune"] = S3prlPruneFrontend
espnet_asr.model_choices.classes["espnet_prune"] = PruneASRModel


class ASRPruneTask(ASRTask):
    """``ASRTask`` that trains the pruning objective along with the ASR losses."""

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> AbsESPnetModel:
        model = super().build_model(args)
        frontend = model.frontend
        if isinstance(frontend, S3prlPruneFrontend) and (frontend.objective is not None or frontend.distill is not None):
            if not isinstance(model, PruneASRModel):
                # the plain model would train the gates without their budget, or without the teacher: refuse
                raise ValueError("frontend s3prl_prune with a pruning_conf or distill_conf needs --model espnet_prune")
        return model

    @classmethod
    def main_worker(cls, args: argparse.Namespace) -> None:
        """ESPnet's training (or stats) process, then the end of its process group if it joined one:
        ESPnet leaves it up, and a gloo group torn down at interpreter exit can abort a rank
        ("terminate called without an active exception") after training has finished."""
        try:
            super().main_worker(args)
        finally:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()

    @classmethod
    def build_optimizers(cls, args: argparse.Namespace, model: torch.nn.Module) -> list[torch.optim.Optimizer]:
        """One optimiser (``--optim``/``--optim_conf``) whose second group holds gates and lambdas at
        the objective's ``reg_lr`` without weight decay (see :func:`param_groups`)."""
        objective = getattr(model.frontend, "objective", None)
        if objective is None:
            return super().build_optimizers(args, model)
        optim_class = optim_classes.get(args.optim)
        if optim_class is None:
            raise ValueError(f"must be one of {list(optim_classes)}: {args.optim}")
        conf = dict(args.optim_conf)
        # per-group lr/weight_decay override optim_conf's; optimisers without betas keep the key unused
        groups = param_groups(model, conf.get("lr", 1e-3), objective.reg_lr, conf.get("weight_decay", 0.0))
        return [optim_class(groups, **conf)]
