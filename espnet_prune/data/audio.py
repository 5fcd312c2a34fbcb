"""Cheap checks of the audio files a data directory points at."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import soundfile

from espnet_prune.data.errors import DataPrepError

SAMPLE_RATE = 16000
# LibriSpeech's and SLURP's longest utterances are ~35 s; a recording of minutes or hours is a
# mistake (an unsegmented file) that would stall decoding or exhaust memory in a training batch.
MAX_SECONDS = 60.0


@dataclass(frozen=True)
class AudioPolicy:
    """What a data prep accepts. `decode`: decode every file, which also catches truncated data
    behind an intact header (slow on a full corpus); `max_seconds`: the longest recording."""

    decode: bool = False
    max_seconds: float = MAX_SECONDS


def check_audio(path: Path, sample_rate: int = SAMPLE_RATE, policy: AudioPolicy = AudioPolicy()) -> int:
    """Return the number of frames of a mono recording at `sample_rate` no longer than
    `policy.max_seconds`; raise DataPrepError otherwise. Reads the header only, unless `policy.decode`.
    """
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError) as error:  # soundfile's errors are RuntimeErrors
        reason = "audio file is missing" if not Path(path).exists() else f"unreadable audio ({error})"
        raise DataPrepError(reason, path) from None
    if info.samplerate != sample_rate:
        raise DataPrepError(f"sample rate is {info.samplerate} Hz, expected {sample_rate} Hz", path)
    if info.channels != 1:
        raise DataPrepError(f"{info.channels} channels, expected mono", path)
    if info.frames <= 0:
        raise DataPrepError("audio is empty (0 samples)", path)
    if info.frames > policy.max_seconds * sample_rate:
        raise DataPrepError(
            f"audio is {info.frames / sample_rate:.1f} s long, more than --max_seconds {policy.max_seconds:g}", path
        )
    if info.format == "WAV":
        _check_wav_length(path)
    if policy.decode:
        _check_decodes(path, info.frames)
    return info.frames


def _check_wav_length(path: Path) -> None:
    """A WAV file shorter than its `data` chunk declares is truncated.

    libsndfile reads such a file without complaint as a shorter one (even decoding it), so this is
    checked from the chunk headers. A size of 0 or 0xFFFFFFFF means "unknown" (streamed output).
    """
    with open(path, "rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return
        while len(chunk := f.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                present = os.fstat(f.fileno()).st_size - f.tell()
                if 0 < size < 0xFFFFFFFF and present < size:
                    raise DataPrepError(f"audio is truncated: {present} of {size} bytes of samples", path)
                return
            f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to an even size


def _check_decodes(path: Path, frames: int) -> None:
    try:
        decoded = len(soundfile.read(str(path), dtype="int16")[0])
    except (RuntimeError, OSError) as error:
        raise DataPrepError(f"audio does not decode ({error})", path) from None
    if decoded != frames:
        raise DataPrepError(f"audio is truncated: {decoded} of {frames} samples decode", path)
