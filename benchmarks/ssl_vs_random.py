"""Does self-supervised pretraining help? CTC fine-tuning from a pretrained upstream vs the same
architecture from random init, at equal steps.

Each upstream is fine-tuned through ESPnet (``espnet_prune.bin.asr_train``: the upstream's last
layer, a layer norm and a character CTC head; AdamW, linear warm-up then constant) for the
largest of ``--steps``, with a checkpoint at each of them; every checkpoint then decodes the test
set with greedy CTC. Prints CER / WER per upstream and step count, and writes them as
``<out>/results.json`` (atomically).

    tools/venv/bin/python benchmarks/ssl_vs_random.py --out exp/ssl_vs_random \\
        --upstream ssl=/work/ssl_run/upstream.pt --upstream random=/work/ssl_run/init.pt \\
        --train data/train_clean_100 --valid data/dev_clean --test data/test_clean --steps 600 1200

The data directories are prep_librispeech's (wav.scp, text). Run it with OMP_NUM_THREADS=1 beside
other jobs (the training processes inherit it). ``random`` should be the pretraining
run's own initial checkpoint: the same architecture and the same random draw.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import editdistance
import torch
import yaml

from espnet_prune.data.atomic import atomic_file
from espnet_prune.pruning.checkpoint import read_checkpoint


def finetune_config(upstream: Path, steps: list[int], lr: float, batch_size: int) -> dict:
    """ESPnet training options: CTC on the upstream's last layer, an epoch per ``steps[0]`` steps."""
    epoch = steps[0]
    return {
        "frontend": "s3prl_prune",
        "frontend_conf": {"upstream_ckpt": str(upstream), "multilayer_feature": False},
        "normalize": None,
        "model": "espnet_prune",
        "model_conf": {"ctc_weight": 1.0},
        "encoder": "transformer",  # no blocks: a layer norm between the upstream and the CTC head
        "encoder_conf": {"output_size": read_checkpoint(upstream).arch.encoder_dim, "num_blocks": 0, "input_layer": None},
        "optim": "adamw",
        "optim_conf": {"lr": lr, "weight_decay": 0.01},
        "scheduler": "piecewiselinearwarmuplr",
        "scheduler_conf": {"warmup_steps_list": [0, 100, 10**6], "warmup_lr_list": [0.0, lr, lr]},
        "grad_clip": 5.0,
        "batch_type": "folded",
        "batch_size": batch_size,
        "fold_length": [80000, 150],
        "max_epoch": steps[-1] // epoch,
        "num_iters_per_epoch": epoch,
        "best_model_criterion": [["valid", "loss", "min"]],
        "keep_nbest_models": steps[-1] // epoch,  # every epoch's model stays
        "num_att_plot": 0,
        "log_interval": 50,
    }


def run(cmd: list[str], log: Path) -> None:
    """Run an ESPnet command with its log in ``log``; exit with its tail on failure."""
    with open(log, "w", encoding="utf-8") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")


def char_tokens(text: Path) -> list[str]:
    """ESPnet's character token list of a ``text`` table."""
    chars = set()
    for line in text.read_text(encoding="utf-8").splitlines():
        chars |= set(line.partition(" ")[2].replace(" ", ""))
    return ["<blank>", "<unk>", "<space>", *sorted(chars), "<sos/eos>"]


def greedy_ctc_errors(config: Path, model_file: Path, test: Path, limit: int | None) -> dict[str, float]:
    """CER and WER of greedy CTC decoding of ``test`` (its first ``limit`` utterances)."""
    from espnet2.fileio.sound_scp import SoundScpReader

    from espnet_prune.tasks.asr import ASRPruneTask

    model, args = ASRPruneTask.build_model_from_file(config, model_file, "cpu")
    model.eval()
    tokens = args.token_list
    refs = dict(line.partition(" ")[::2] for line in (test / "text").read_text(encoding="utf-8").splitlines())
    wavs = SoundScpReader(str(test / "wav.scp"), dtype="float32")
    utts = list(refs)[:limit]
    errors = {"char": 0, "word": 0}
    totals = {"char": 0, "word": 0}
    for utt in utts:
        _, wav = wavs[utt]
        speech = torch.from_numpy(wav)[None]
        with torch.no_grad():
            enc, enc_lens = model.encode(speech, torch.tensor([speech.size(1)]))
            best = model.ctc.argmax(enc)[0, : int(enc_lens[0])].tolist()
        ids = [t for j, t in enumerate(best) if t != 0 and (j == 0 or t != best[j - 1])]
        hyp = "".join(" " if tokens[t] == "<space>" else tokens[t] for t in ids).strip()
        for unit, split in (("char", list), ("word", str.split)):
            ref_units = split(refs[utt].replace(" ", "") if unit == "char" else refs[utt])
            hyp_units = split(hyp.replace(" ", "") if unit == "char" else hyp)
            errors[unit] += editdistance.eval(ref_units, hyp_units)
            totals[unit] += len(ref_units)
    return {"cer": errors["char"] / totals["char"], "wer": errors["word"] / totals["word"], "utterances": len(utts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", action="append", required=True, metavar="NAME=CKPT", help="an upstream to fine-tune")
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--valid", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, nargs="+", default=[600, 1200], help="step counts to evaluate at")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_test", type=int, help="decode only the first N test utterances")
    args = parser.parse_args()
    steps = sorted(args.steps)
    if any(s % steps[0] for s in steps):
        parser.error(f"--steps {steps}: each must be a multiple of the smallest (an epoch)")
    upstreams = dict(item.split("=", 1) for item in args.upstream)
    args.out.mkdir(parents=True, exist_ok=True)
    tokens = args.out / "tokens.txt"
    tokens.write_text("\n".join(char_tokens(args.train / "text")) + "\n", encoding="utf-8")
    train_cmd = [sys.executable, "-m", "espnet_prune.bin.asr_train", "--ngpu", "0", "--num_workers", "0",
                  "--token_type", "char", "--token_list", str(tokens), "--use_preprocessor", "true"]
    for split, data in (("train", args.train), ("valid", args.valid)):
        train_cmd += [f"--{split}_data_path_and_name_and_type", f"{data}/wav.scp,speech,sound",
                       f"--{split}_data_path_and_name_and_type", f"{data}/text,text,text"]
    results: dict[str, dict[int, dict[str, float]]] = {}
    stats = args.out / "stats"
    for name, ckpt in upstreams.items():
        exp = args.out / name
        exp.mkdir(exist_ok=True)
        config = exp / "train.yaml"
        config.write_text(yaml.safe_dump(finetune_config(Path(ckpt), steps, args.lr, args.batch_size)))
        if not (stats / "train" / "speech_shape").is_file():
            shapes = [a for split, data in (("train", args.train), ("valid", args.valid))
                      for f in ("wav.scp", "text") for a in (f"--{split}_shape_file", f"{data}/{f}")]
            run([*train_cmd, "--config", str(config), "--collect_stats", "true", "--batch_type", "unsorted",
                 "--output_dir", str(stats), *shapes], args.out / "stats.log")
        shapes = [a for split in ("train", "valid") for n in ("speech", "text")
                  for a in (f"--{split}_shape_file", f"{stats}/{split}/{n}_shape")]
        run([*train_cmd, "--config", str(config), "--output_dir", str(exp / "train"), "--resume", "true", *shapes],
            exp / "train.log")
        epoch = steps[0]
        results[name] = {
            s: greedy_ctc_errors(exp / "train" / "config.yaml", exp / "train" / f"{s // epoch}epoch.pth", args.test, args.max_test)
            for s in steps
        }
    print(f"| upstream | {' | '.join(f'CER / WER @ {s}' for s in steps)} |")
    print(f"|---|{'---|' * len(steps)}")
    for name, by_step in results.items():
        cells = [f"{r['cer']:.3f} / {r['wer']:.3f}" for r in by_step.values()]
        print(f"| {name} | {' | '.join(cells)} |")
    with atomic_file(args.out / "results.json") as tmp:
        tmp.write_text(json.dumps({"upstreams": upstreams, "steps": steps, "lr": args.lr, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
