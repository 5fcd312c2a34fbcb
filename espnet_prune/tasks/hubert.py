"""HuBERT masked-prediction pretraining as an ESPnet task: ESPnet's trainer (resumable, logged,
checkpointed per epoch) around :class:`espnet_prune.ssl.model.HubertPretrainModel`.

Training data: ``speech`` (wav.scp, type ``sound``) and ``labels`` (one cluster id per CNN frame,
``<utt> 12 12 40 ...``, type ``text_int``, as ``espnet_prune.bin.hubert_labels dump`` writes it).
There are no transcripts: the data name is ``labels``, not ESPnet's ``text``, so that none can be
fed by mistake. Batches are padded (labels with -1); the model masks padding per CNN frame.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection
from typing import Optional

import numpy as np
import torch
from espnet2.tasks.abs_task import AbsTask
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.train.trainer import Trainer
from espnet2.utils.nested_dict_action import NestedDictAction

from espnet_prune.ssl.model import HubertPretrainModel


class HubertPretrainTask(AbsTask):
    """``--model_conf`` holds :class:`HubertPretrainModel`'s arguments (unknown keys are errors)."""

    num_optimizers: int = 1
    class_choices_list = []
    trainer = Trainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(description="Task related")
        group.add_argument(
            "--model_conf",
            action=NestedDictAction,
            default=dict(),
            help="HubertPretrainModel's arguments, e.g. upstream_ckpt=init.pt",
        )

    @classmethod
    def build_collate_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Callable[[Collection[tuple[str, dict[str, np.ndarray]]]], tuple[list[str], dict[str, torch.Tensor]]]:
        return CommonCollateFn(float_pad_value=0.0, int_pad_value=-1)

    @classmethod
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]]:
        return None

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> tuple[str, ...]:
        return ("speech", "labels")

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> tuple[str, ...]:
        return ()

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> HubertPretrainModel:
        return HubertPretrainModel(**args.model_conf)
