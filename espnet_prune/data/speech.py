"""Speech from espeak-ng: voices as speakers, rendered to 16 kHz mono 16-bit FLAC, in parallel.

espeak-ng always speaks at 22050 Hz; we resample by 320/441 to 16 kHz. It silently falls back to
its plain voice for an unknown voice or variant name, so names are validated against what is
installed. Digital silence is unlike any recording (and hurts recognisers), so each utterance is
padded with 0.2 s and gets a faint noise floor; the noise is seeded per utterance, which keeps
the output byte-identical whatever the number of worker processes.
"""

from __future__ import annotations

import functools
import multiprocessing
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soundfile
from scipy.signal import fftconvolve, resample_poly
from tqdm import tqdm

ESPEAK = "espeak-ng"
ESPEAK_SAMPLE_RATE = 22050
SAMPLE_RATE = 16000
# espeak-ng's amplitude (0-200): at 100, peaks clip after resampling.
AMPLITUDE = 90
PAD_SECONDS = 0.2
NOISE_FLOOR_RMS = 3e-4  # about -70 dBFS
FAR_FIELD_NOISE_RMS = 3e-3  # about -50 dBFS
FAR_FIELD_RT60_SECONDS = 0.3


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice as a speaker: base voice, optional variant, pitch (0-99), rate (wpm)."""

    base: str
    variant: str | None
    pitch: int
    rate: int

    @property
    def name(self) -> str:
        """espeak-ng's -v argument, e.g. "en-us+f3"."""
        return self.base if self.variant is None else f"{self.base}+{self.variant}"

    @property
    def sex(self) -> str:
        """ "F" for the female variants (f1..f5), else "M" (espeak-ng's base voices are male)."""
        return "F" if self.variant is not None and self.variant[:1] == "f" else "M"

    def describe(self) -> str:
        return f"espeak-ng {self.name} pitch {self.pitch} rate {self.rate}"


@dataclass(frozen=True)
class RenderJob:
    """One utterance to synthesise: text, voice, output FLAC, noise seed, far-field or close-talk."""

    text: str
    voice: Voice
    path: str
    seed: int
    far_field: bool = False


@functools.lru_cache(maxsize=1)
def installed_voices() -> tuple[frozenset[str], frozenset[str]]:
    """(language voice names, variant names) that espeak-ng has, MBROLA voices excluded."""
    languages = _voice_table_column(["--voices"], language_column=True)
    variants = _voice_table_column(["--voices=variant"], language_column=False)
    return frozenset(languages), frozenset(variants)


def _voice_table_column(args: list[str], language_column: bool) -> set[str]:
    listing = subprocess.run([ESPEAK, *args], capture_output=True, text=True, check=True).stdout
    names = set()
    for row in listing.splitlines()[1:]:  # header: Pty Language Age/Gender VoiceName File ...
        fields = row.split()
        if len(fields) < 5 or fields[4].startswith("mb/"):  # MBROLA voices are not installable
            continue
        names.add(fields[1] if language_column else fields[4].split("/", 1)[1])
    return names


def espeak_version() -> str:
    """espeak-ng's version line, without its data path ("eSpeak NG text-to-speech: 1.51")."""
    line = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=True).stdout
    return line.split("Data at:")[0].strip()


def validate_voice(voice: Voice) -> None:
    """ValueError if espeak-ng lacks the base voice or variant (it would silently fall back)."""
    languages, variants = installed_voices()
    if voice.base not in languages:
        raise ValueError(f"espeak-ng has no voice {voice.base!r}")
    if voice.variant is not None and voice.variant not in variants:
        raise ValueError(f"espeak-ng has no variant {voice.variant!r}")
    if not 0 <= voice.pitch <= 99 or not 80 <= voice.rate <= 450:
        raise ValueError(f"pitch {voice.pitch} or rate {voice.rate} out of espeak-ng's range")


@functools.cache
def _settle_espeak() -> None:
    # espeak-ng's first synthesis in a HOME without ~/.config/pulse (which its first call of any
    # kind creates) differs from every later one: one harmless call per process keeps a corpus the
    # same on a fresh machine (a GPU image, a CI runner) as here
    espeak_version()


def espeak_samples(text: str, voice: Voice) -> np.ndarray:
    """espeak-ng's speech for `text` as float samples in [-1, 1] at 22050 Hz."""
    _settle_espeak()
    options = ["-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.rate), "-a", str(AMPLITUDE)]
    command = [ESPEAK, *options, "--stdin", "--stdout"]
    wav = subprocess.run(command, input=text.encode(), capture_output=True, check=True).stdout
    return _pcm_from_wav(wav).astype(np.float64) / 32768.0


def _pcm_from_wav(wav: bytes) -> np.ndarray:
    # espeak-ng writes to a pipe, so its RIFF and data sizes are placeholders: walk the chunks
    # and take everything after the data chunk's header.
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise RuntimeError("espeak-ng did not write a WAV stream")
    offset = 12
    while offset + 8 <= len(wav):
        chunk, size = wav[offset : offset + 4], struct.unpack("<I", wav[offset + 4 : offset + 8])[0]
        if chunk == b"fmt ":
            channels, rate = struct.unpack("<HI", wav[offset + 10 : offset + 16])
            bits = struct.unpack("<H", wav[offset + 22 : offset + 24])[0]
            if (channels, rate, bits) != (1, ESPEAK_SAMPLE_RATE, 16):
                raise RuntimeError(f"unexpected espeak-ng format: {channels} ch, {rate} Hz, {bits} bit")
        elif chunk == b"data":
            data = wav[offset + 8 :]
            return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")
        offset += 8 + size + (size & 1)
    raise RuntimeError("espeak-ng's WAV stream has no data chunk")


def render(job: RenderJob) -> int:
    """Synthesise one utterance to its FLAC file; return its number of samples."""
    rng = np.random.default_rng(job.seed)
    speech = resample_poly(espeak_samples(job.text, job.voice), 320, 441)
    pad = np.zeros(int(PAD_SECONDS * SAMPLE_RATE))
    audio = np.concatenate([pad, speech, pad])
    if job.far_field:
        audio = _reverberate(audio, rng)
    audio = audio + rng.normal(0.0, FAR_FIELD_NOISE_RMS if job.far_field else NOISE_FLOOR_RMS, len(audio))
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    soundfile.write(job.path, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return len(pcm)


def _reverberate(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A far-field microphone: direct sound plus an exponentially decaying diffuse tail.
    length = int(FAR_FIELD_RT60_SECONDS * SAMPLE_RATE)
    decay = np.exp(-6.9 * np.arange(length) / length)  # -60 dB at RT60
    response = 0.3 * rng.standard_normal(length) * decay / np.sqrt(length / 20)
    response[0] = 1.0
    wet = fftconvolve(audio, response)[: len(audio)]
    peak = np.max(np.abs(wet))
    return wet * (np.max(np.abs(audio)) / peak) if peak > 0 else wet


def render_all(
    jobs: Sequence[RenderJob], workers: int, progress: bool = True, desc: str = "synth"
) -> list[int]:
    """Render every job (in `workers` processes); return each one's number of samples, in order."""
    bar = functools.partial(tqdm, total=len(jobs), desc=desc, unit="utt", disable=not progress)
    if workers <= 1 or len(jobs) < 2:
        return [render(job) for job in bar(jobs)]
    with multiprocessing.Pool(min(workers, len(jobs))) as pool:
        return list(bar(pool.imap(render, jobs, chunksize=4)))
