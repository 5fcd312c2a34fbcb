"""The intent vocabulary of the SLU model, and the data-loader step that turns intent names into ids.

An intent list is a text file with one ``<scenario>_<action>`` per line (like ESPnet's token list):

    cut -d' ' -f2 data/train/intent | sort -u > data/intent_list

``<unk>`` (:data:`UNK_INTENT`) is put first when the file lacks it: utterances whose intent is not in
the list (e.g. a dev set's intent unseen in training) get its id, which the intent loss ignores and
the head never predicts.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np

logger = logging.getLogger(__name__)

UNK_INTENT = "<unk>"

PreprocessFn = Callable[[str, dict], dict]


class IntentListError(ValueError):
    """An intent list that cannot be used: unreadable, empty, duplicated or malformed entries."""


def check_intent_list(intents: Sequence[str], source: str = "intent_list") -> list[str]:
    """The intents with :data:`UNK_INTENT` first if it was missing; IntentListError when an entry is
    empty, holds whitespace or occurs twice, or when there is no intent besides ``<unk>``."""
    intents = list(intents)
    for intent in intents:
        if not isinstance(intent, str) or not intent or any(c.isspace() for c in intent):
            raise IntentListError(
                f"{source}: {intent!r} is not one intent per line (to make the list from a data directory: "
                "cut -d' ' -f2 data/train/intent | sort -u)"
            )
    duplicated = sorted(name for name, n in Counter(intents).items() if n > 1)
    if duplicated:
        raise IntentListError(f"{source}: intents listed twice: {duplicated[:5]}")
    if UNK_INTENT not in intents:
        intents.insert(0, UNK_INTENT)
    if len(intents) < 2:
        raise IntentListError(f"{source}: no intent besides {UNK_INTENT}")
    return intents


def read_intent_list(path: Union[str, Path]) -> list[str]:
    """An intent list file (one intent per line, blank lines skipped) checked by :func:`check_intent_list`."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise IntentListError(f"cannot read intent list {path}: {error}") from None
    return check_intent_list([line.strip() for line in lines if line.strip()], str(path))


class IntentPreprocessor:
    """ESPnet preprocess function: the task's own preprocessor (speech, text), then ``intent``
    (the ``<scenario>_<action>`` read from the data file ``intent`` with type ``text``) -> an int64
    array of shape (1,) holding its id, which ESPnet's collate function batches as ``intent`` (B, 1)
    and ``intent_lengths`` (B,).

    Intents not in the list get the ``<unk>`` id; each is logged once (with its first utterance) and
    counted in :attr:`unseen`.
    """

    def __init__(self, base: Optional[PreprocessFn], intents: Sequence[str]) -> None:
        self.base = base
        self.intent_ids = {name: i for i, name in enumerate(check_intent_list(intents))}
        self.unk_id = self.intent_ids[UNK_INTENT]
        self.unseen: Counter[str] = Counter()

    def __repr__(self) -> str:  # ESPnet logs the dataset's preprocess function
        return f"{type(self).__name__}(base={self.base!r}, intents={len(self.intent_ids)})"

    def __call__(self, uid: str, data: dict) -> dict:
        if self.base is not None:
            data = self.base(uid, data)
        intent = data.get("intent")
        if isinstance(intent, str):
            data["intent"] = np.array([self.intent_id(uid, intent.strip())], dtype=np.int64)
        return data

    def intent_id(self, uid: str, intent: str) -> int:
        """The intent's id, or the ``<unk>`` id (logged the first time) when it is not in the list."""
        index = self.intent_ids.get(intent)
        if index is not None and index != self.unk_id:
            return index
        if intent not in self.unseen:
            logger.warning(
                "intent %r (utterance %s) is not in the intent list: mapped to %s, ignored by the intent loss",
                intent, uid, UNK_INTENT,
            )  # fmt: skip
        self.unseen[intent] += 1
        return self.unk_id
