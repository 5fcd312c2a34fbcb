"""SLU on the pruning ASR task: model ``espnet_prune_slu`` and the ``intent`` input.

Training data: ``speech`` (wav.scp, sound), ``text`` (the slurp_entity target, tokenised as in ASR)
and ``intent`` (the data file ``intent``, ``<utt> <scenario>_<action>``, type ``text``); the
intent names become ids through ``--intent_list`` (see :mod:`espnet_prune.slu.intents`).

The list is copied into ``model_conf.intent_list`` (and ``intent_list``) of the saved config.yaml,
as ESPnet copies the token list, so ESPnet's ``ASRTask.build_model_from_file`` (``Speech2Text``,
``asr_shrink``) builds the model from the config alone once this module has registered it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Optional

from espnet2.tasks import asr as espnet_asr
from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet2.utils.types import str_or_none

from espnet_prune.slu.intents import IntentListError, IntentPreprocessor, check_intent_list, read_intent_list
from espnet_prune.slu.model import PruneSLUModel
from espnet_prune.tasks.asr import ASRPruneTask

espnet_asr.model_choices.classes["espnet_prune_slu"] = PruneSLUModel


def resolve_intent_list(args: argparse.Namespace) -> list[str]:
    """The intent list from ``--intent_list`` (a file, or the list of a saved config) and/or
    ``model_conf.intent_list``; ValueError when neither is given or they differ."""
    given = getattr(args, "intent_list", None)
    from_args = read_intent_list(given) if isinstance(given, str) else None
    if isinstance(given, (list, tuple)):
        from_args = check_intent_list(given, "intent_list")
    in_conf = (getattr(args, "model_conf", None) or {}).get("intent_list")
    from_conf = None if in_conf is None else check_intent_list(in_conf, "model_conf.intent_list")
    if from_args is None and from_conf is None:
        raise IntentListError("the SLU task needs --intent_list (a file with one <scenario>_<action> per line)")
    if from_args is not None and from_conf is not None and from_args != from_conf:
        raise IntentListError("--intent_list and model_conf.intent_list differ: give one of them")
    return from_args if from_args is not None else from_conf


class SLUPruneTask(ASRPruneTask):
    """:class:`ASRPruneTask` whose model (``--model espnet_prune_slu``) also learns the intent."""

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_task_arguments(parser)
        group = parser.add_argument_group(description="SLU related")
        group.add_argument(
            "--intent_list",
            type=str_or_none,
            default=None,
            help="file with one <scenario>_<action> per line (<unk> is added first when missing): the intent "
            "head's classes; intents of the data not in it are trained as <unk>, which the intent loss ignores",
        )

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> tuple[str, ...]:
        if inference:
            return super().required_data_names(train, inference)
        return (*super().required_data_names(train, inference), "intent")

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> AbsESPnetModel:
        model_class = espnet_asr.model_choices.get_class(getattr(args, "model", None) or "espnet")
        if not issubclass(model_class, PruneSLUModel):
            raise ValueError(f"the SLU task needs --model espnet_prune_slu, got {getattr(args, 'model', None)!r}")
        intents = resolve_intent_list(args)
        # kept in the config as ESPnet keeps the token list: the model can be rebuilt without the file
        args.intent_list = intents
        args.model_conf = {**args.model_conf, "intent_list": intents}
        return super().build_model(args)

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool) -> Optional[Callable[[str, dict], dict]]:
        """ESPnet's preprocessor for speech and text, then the intent name -> id (:class:`IntentPreprocessor`)."""
        return IntentPreprocessor(super().build_preprocess_fn(args, train), resolve_intent_list(args))
