"""Decode a data directory with ESPnet's ``Speech2Text`` (joint CTC/attention beam search), timed.

    python -m espnet_prune.bin.asr_decode --asr_train_config exp/X/config.yaml \\
        --asr_model_file exp/X/valid.acc.ave.pth --decode_config conf/decode_asr.yaml \\
        --data_dir data/test_clean --out_dir exp/X/decode_asr/test_clean [--nj 2] \
        [--lm_train_config exp/lm/config.yaml --lm_file exp/lm/valid.loss.ave.pth]

``--decode_config`` holds ``Speech2Text`` keyword arguments (``beam_size``, ``ctc_weight``,
``lm_weight``, ...) and ``pre_beam`` (default true); an unknown key is an error. ``pre_beam: false``
scores CTC on every token at each step of the joint search: by default ESPnet scores it only on the
1.5 x beam_size tokens the decoder and LM rank best, so a decoder that has trained for only a few
thousand steps hides the right character from CTC (synthetic LibriSpeech, ctc_weight 0.3: WER 9.7 %
with the pre-beam, 4.6 % without, on 80 test utterances); with a character vocabulary scoring all
of them costs little. The language model (ESPnet's lm_train), when given,
joins the beam search with weight ``lm_weight`` (shallow fusion). The output directory, written only when every
utterance is decoded, holds ESPnet's ``text`` and ``token`` tables and ``decode.json``: the
number of utterances, seconds of audio, seconds spent in ``Speech2Text`` calls (model loading
excluded) and their ratio, the real-time factor of one single-threaded decoding process, and the
same for the model's frontend alone (``upstream_rtf``: the S3PRL upstream, shrunk or dense, inside
that decoding; what pruning speeds up, beside the beam search it does not), and the utterances
too short for the model's subsampling (``too_short``: decoded as empty, logged). An SLU model
(``espnet_prune_slu``) also gets ``intent``: its intent head's prediction per utterance
(``score_slurp --hyp_intent`` reads it; ``slu_inference`` turns both into SLURP predictions).
With intermediate CTC, Speech2Text's (n-best, intermediate outputs) is read for its n-best.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from espnet_prune.data.atomic import atomic_directory

_worker: dict[str, Any] = {}  # per decoding process: the Speech2Text and the wav.scp reader


def read_decode_config(path: Optional[Path]) -> dict[str, Any]:
    """``Speech2Text`` keyword arguments from YAML; unknown keys are an error naming the file."""
    if path is None:
        return {}
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    if not isinstance(conf, dict):
        raise ValueError(f"{path}: expected a mapping of Speech2Text arguments")
    from espnet2.bin.asr_inference import Speech2Text

    known = set(inspect.signature(Speech2Text).parameters) - {"asr_train_config", "asr_model_file", "device"}
    unknown = sorted(set(conf) - known - {"pre_beam"})
    if unknown:
        raise ValueError(f"{path}: unknown decoding keys {unknown}")
    if not isinstance(conf.get("pre_beam", True), bool):
        raise ValueError(f"{path}: pre_beam takes true or false, not {conf['pre_beam']!r}")
    return conf


def build_speech2text(train_config: str, model_file: str, conf: dict[str, Any]) -> Any:
    """ESPnet's ``Speech2Text`` on CPU from ``read_decode_config``'s options (``pre_beam`` included)."""
    from espnet2.bin.asr_inference import Speech2Text

    import espnet_prune.tasks.slu  # noqa: F401  (registers s3prl_prune and the espnet_prune(_slu) models)

    options = dict(conf)
    pre_beam = options.pop("pre_beam", True)
    speech2text = Speech2Text(asr_train_config=train_config, asr_model_file=model_file, device="cpu", **options)
    if not pre_beam and speech2text.beam_search is not None:
        # BeamSearch.search reads the flag at every step; ESPnet sets it only from the beam size
        speech2text.beam_search.do_pre_beam = False
    return speech2text


def _init_worker(train_config: str, model_file: str, conf: dict[str, Any], wav_scp: str) -> None:
    try:
        _load_worker(train_config, model_file, conf, wav_scp)
    except Exception as error:  # noqa: BLE001
        # a Pool replaces a worker whose initializer raised, again and again, and the parent waits
        # forever: the error is raised by the worker's first utterance instead, which ends the decoding
        _worker["error"] = error


def _load_worker(train_config: str, model_file: str, conf: dict[str, Any], wav_scp: str) -> None:
    import torch
    from espnet2.fileio.sound_scp import SoundScpReader

    from espnet_prune.slu.model import PruneSLUModel

    torch.set_num_threads(1)  # one process per core: beam search gains little from threads
    logging.getLogger().setLevel(logging.WARNING)  # beam search logs every hypothesis at INFO
    _worker["speech2text"] = build_speech2text(train_config, model_file, conf)
    model = _worker["speech2text"].asr_model
    _worker["intent_model"] = model if isinstance(model, PruneSLUModel) else None
    if model.frontend is not None:
        model.frontend.register_forward_pre_hook(_start_frontend_clock)
        model.frontend.register_forward_hook(_stop_frontend_clock)
    _worker["audio"] = SoundScpReader(wav_scp, dtype="float32")


def _start_frontend_clock(module: Any, inputs: Any) -> None:
    _worker["frontend_start"] = time.perf_counter()


def _stop_frontend_clock(module: Any, inputs: Any, output: Any) -> None:
    _worker["frontend_seconds"] += time.perf_counter() - _worker["frontend_start"]


def _decode(utt: str) -> tuple[str, str, list[str], Optional[str], float, float, float, bool]:
    """utt -> (utt, text, tokens, the intent head's intent or None, audio seconds, decode seconds,
    seconds of those in the frontend, whether it was too short for the model: then no hypothesis)."""
    import torch
    from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

    if "error" in _worker:
        raise _worker["error"]
    rate, wav = _worker["audio"][utt]
    if rate != 16000:
        raise ValueError(f"{utt}: sampling rate {rate} Hz; the models take 16 kHz")
    speech2text, model = _worker["speech2text"], _worker["intent_model"]
    intent, too_short = None, False
    _worker["frontend_seconds"] = 0.0
    start = time.perf_counter()
    with torch.no_grad(), contextlib.ExitStack() as stack:
        captured = stack.enter_context(model.capture_encoder_output()) if model is not None else None
        try:
            results = speech2text(wav)
        except TooShortUttError as error:
            logging.warning("utterance %s: %s (no hypothesis)", utt, error)
            results, too_short = [], True
        if isinstance(results, tuple):  # with intermediate CTC: (n-best, intermediate results)
            results = results[0]
        if captured:
            intent = model.head_intents(captured)[0]
    seconds = time.perf_counter() - start
    text, tokens = (results[0][0] or "", list(results[0][1])) if results else ("", [])
    return utt, text, tokens, intent, len(wav) / rate, seconds, _worker["frontend_seconds"], too_short


def decode_data_dir(
    train_config: Path, model_file: Path, data_dir: Path, out_dir: Path, conf: dict[str, Any], nj: int = 1
) -> dict[str, Any]:
    """Decode every utterance of ``data_dir/wav.scp`` in ``nj`` processes; returns decode.json's content."""
    from tqdm import tqdm

    wav_scp = data_dir / "wav.scp"
    utts = [line.split(maxsplit=1)[0] for line in wav_scp.read_text(encoding="utf-8").splitlines() if line.strip()]
    for path in (train_config, model_file, wav_scp):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist")
    # fork before this process runs any torch op: the workers inherit the imports, not a thread pool
    context = multiprocessing.get_context("fork")
    results = {}
    with context.Pool(nj, _init_worker, (str(train_config), str(model_file), conf, str(wav_scp))) as pool:
        for utt, *result in tqdm(
            pool.imap_unordered(_decode, utts), total=len(utts), desc=f"decode {data_dir.name}", file=sys.stderr
        ):
            results[utt] = tuple(result)  # text, tokens, intent, audio s, decode s, frontend s, too short
    audio_seconds = sum(r[3] for r in results.values())
    decode_seconds = sum(r[4] for r in results.values())
    upstream_seconds = sum(r[5] for r in results.values())
    summary = {
        "utterances": len(results),
        "audio_seconds": round(audio_seconds, 3),
        "decode_seconds": round(decode_seconds, 3),
        "rtf": round(decode_seconds / audio_seconds, 5) if audio_seconds else None,
        "upstream_seconds": round(upstream_seconds, 3),
        "upstream_rtf": round(upstream_seconds / audio_seconds, 5) if audio_seconds else None,
        "too_short": sorted(u for u, r in results.items() if r[6]),
        "processes": nj,
        "threads_per_process": 1,
        "decode_config": conf,
    }
    with atomic_directory(out_dir) as tmp:
        (tmp / "text").write_text("".join(f"{u} {results[u][0]}\n" for u in sorted(results)), encoding="utf-8")
        (tmp / "token").write_text("".join(f"{u} {' '.join(results[u][1])}\n" for u in sorted(results)), encoding="utf-8")
        if any(r[2] is not None for r in results.values()):
            (tmp / "intent").write_text("".join(f"{u} {results[u][2]}\n" for u in sorted(results)), encoding="utf-8")
        (tmp / "decode.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def build_parser(description: Optional[str] = __doc__) -> argparse.ArgumentParser:
    """The decoding options (slu_inference adds its own to them)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr_train_config", type=Path, required=True)
    parser.add_argument("--asr_model_file", type=Path, required=True)
    parser.add_argument("--decode_config", type=Path, help="YAML of Speech2Text arguments")
    parser.add_argument("--lm_train_config", type=Path, help="a language model's config.yaml (ESPnet's lm_train)")
    parser.add_argument("--lm_file", type=Path, help="its weights; lm_weight in --decode_config weighs it")
    parser.add_argument("--data_dir", type=Path, required=True, help="with wav.scp")
    parser.add_argument("--nj", type=int, default=os.cpu_count() or 1, help="decoding processes (default: all cores)")
    return parser


def decoding_options(args: argparse.Namespace) -> dict[str, Any]:
    """Speech2Text's keyword arguments: --decode_config's, and the LM's files."""
    conf = read_decode_config(args.decode_config)
    if (args.lm_train_config is None) != (args.lm_file is None):
        raise ValueError("give both --lm_train_config and --lm_file, or neither")
    if args.lm_train_config is not None:
        for path in (args.lm_train_config, args.lm_file):
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist (the language model stage makes it)")
        conf = {**conf, "lm_train_config": str(args.lm_train_config), "lm_file": str(args.lm_file)}
    return conf


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    parser.add_argument("--out_dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    try:
        conf = decoding_options(args)
        summary = decode_data_dir(args.asr_train_config, args.asr_model_file, args.data_dir, args.out_dir, conf, args.nj)
    except (ValueError, FileNotFoundError) as error:
        logging.error("%s", error)
        return 1
    logging.info(
        "%s: %d utterances, %.1f s of audio, RTF %.4f, of which the upstream %.4f (1 thread per process)",
        args.out_dir, summary["utterances"], summary["audio_seconds"], summary["rtf"] or 0.0,
        summary["upstream_rtf"] or 0.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
