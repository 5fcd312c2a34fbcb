"""asr_decode's per-utterance step: what Speech2Text can return or raise besides an n-best list."""

import numpy as np
import pytest
from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

from espnet_prune.bin import asr_decode


class _FakeSpeech2Text:
    """Raises like a conv2d-subsampling encoder on short input; returns (n-best, intermediate CTC
    outputs) as Speech2Text does for a model with intermediate CTC."""

    def __call__(self, wav: np.ndarray):
        if len(wav) < 1600:
            raise TooShortUttError("too short for subsampling", len(wav), 1600)
        return [("a b", ["a", "b"], [2, 3], None)], {"encoder_layer3": [("a", ["a"], [2], None)]}


@pytest.fixture
def worker(monkeypatch):
    audio = {"short": (16000, np.zeros(800, dtype=np.float32)), "long": (16000, np.zeros(16000, dtype=np.float32))}
    for key, value in {"speech2text": _FakeSpeech2Text(), "intent_model": None, "audio": audio}.items():
        monkeypatch.setitem(asr_decode._worker, key, value)


def test_too_short_utterances_decode_as_empty_and_are_flagged(worker):
    utt, text, tokens, intent, audio_seconds, _, _, too_short = asr_decode._decode("short")
    assert (utt, text, tokens, intent, too_short) == ("short", "", [], None, True)
    assert audio_seconds == pytest.approx(0.05)


def test_intermediate_ctc_outputs_are_read_for_their_n_best(worker):
    _, text, tokens, _, _, _, _, too_short = asr_decode._decode("long")
    assert (text, tokens, too_short) == ("a b", ["a", "b"], False)
