"""Memory plan for the real recipes: how much audio one training step can hold on a 24, 40 or 80 GB card.

One training step (forward, backward, AdamW step) of a recipe's whole model, built by our ESPnet
task from the recipe's own config (upstream of the base architecture with every gate and the
pruning objective, encoder, attention decoder, CTC; 300 BPE units), on random audio with ~4 tokens
per second, at several batch sizes and lengths; with the CNN trained (``train_cnn: true``, as the
pruned configs must) and frozen (then the method is Transformer-only: gated CNN channels must train),
in fp32 and under bf16 autocast.

Peak memory on CPU is the process's: each point runs in its own process; before each step freed memory
is returned to the system (``malloc_trim``) and the kernel's peak resident size is restarted
(``/proc/self/clear_refs``), so the peak (``VmHWM``) is the second step's. Reported minus the
process's size before the model was built (Python, torch and ESPnet themselves: on a GPU run they
stay in host memory). Split: ``static`` = weights, gradients and the AdamW state (resident when the
second step starts), ``activations`` = peak - static. Fit per (CNN, precision): peak = a + b x (seconds of audio in the batch). The plan:
the largest ``batch_bins`` (16 kHz samples per batch: ESPnet's ``batch_type: numel`` counts the
speech samples, and the few tokens) whose predicted peak is at most 80 % of the card. A GPU adds
its CUDA context and allocator slack (the 20 % margin is for them; ``device_check.sh`` measures the
planned batch on a GPU when one is lent). The check point (not in the fit) compares prediction and
measurement. ``--out X.md`` also writes ``X.json`` (the points and the fits), which ``--fits`` reads to
put a prediction beside each measured point (``--device cuda``: the CUDA allocator's peak,
``torch.cuda.max_memory_allocated``, from the same step; fp16 is predicted by bf16's fit).

    tools/venv/bin/python benchmarks/memory_plan.py --jobs 2 --out benchmarks/RESULTS_memory_plan.md
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "egs2/librispeech_100/asr1/conf/train_asr_pruned.yaml"
SAMPLE_RATE = 16000
TOKENS_PER_SECOND = 4  # LibriSpeech reads at ~2.7 words/s; ~1.5 BPE-300 units per word
CARDS_GB = (24, 40, 80)
MARGIN = 0.8
# the sweep estimate's cards (one per size) and their dense bf16 peak, TFLOP/s (vendors' data sheets)
CARD_SPECS = {24: ("A10", 125.0), 40: ("A100 40GB", 312.0), 80: ("H100 SXM", 989.0)}
# 51 TFLOP/s (6 x upstream MACs) of the spec's 989 dense bf16, measured on an H200 at the 40 GB card's
# batch with the upstream under autocast (benchmarks/RESULTS_device_check.md); assumed on the other cards
UTILISATION = 0.052
TRAIN_SECONDS = 100.6 * 3600  # LibriSpeech train-clean-100
SWEEP_RUN = REPO / "egs2/librispeech_100/asr1/run.sh"
# (batch, seconds per utterance): the fit's points, and one check point outside them
GRID = ((1, 2.0), (1, 4.0), (1, 8.0), (2, 4.0))
CHECK = (3, 6.0)


def _status_mb(key: str) -> float:
    """VmRSS (resident now) or VmHWM (its peak since the last reset) of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _settle() -> float:
    """Return freed memory to the system (glibc keeps it otherwise), restart the peak; RSS now (MB)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS
    return _status_mb("VmRSS")


def measure(config: Path, arch: str, preset: str, device: str, batch: int, seconds: float, train_cnn: bool, precision: str) -> dict:
    """One point, in this process: peak, static and activation memory (MB) of a training step."""
    import torch

    from espnet_prune.pruning.presets import make_checkpoint
    from espnet_prune.tasks.asr import ASRPruneTask

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    cuda = device.startswith("cuda")

    def settle() -> float:
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
            return torch.cuda.memory_allocated(device) / 2**20
        return _settle()

    def peak_mb() -> float:
        return torch.cuda.max_memory_allocated(device) / 2**20 if cuda else _status_mb("VmHWM")

    process = settle()  # Python, torch, ESPnet: host memory of a GPU run, not the card's
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(make_checkpoint(arch, preset, seed=0), f"{tmp}/upstream.pt")
        Path(f"{tmp}/tokens.txt").write_text("\n".join(["<blank>", "<unk>", *[f"u{i}" for i in range(297)], "<sos/eos>"]) + "\n")
        args = ASRPruneTask.get_parser().parse_args(
            ["--config", str(config), "--token_list", f"{tmp}/tokens.txt", "--token_type", "bpe", "--output_dir", tmp,
             "--frontend_conf", f"upstream_ckpt={tmp}/upstream.pt", "--frontend_conf", f"train_cnn={str(train_cnn).lower()}",
             *([] if train_cnn else ["--frontend_conf", "pruning_conf.method=trf_only"])]
        )  # fmt: skip
        torch.manual_seed(0)  # every point's model starts the same: fp32 and autocast losses compare
        model = ASRPruneTask.build_model(args).to(device)
    optimizer = ASRPruneTask.build_optimizers(args, model)[0]
    model.train()
    samples = round(seconds * SAMPLE_RATE)
    tokens = max(1, round(seconds * TOKENS_PER_SECOND))
    generator = torch.Generator().manual_seed(0)
    speech = (0.1 * torch.randn(batch, samples, generator=generator)).to(device)
    text = torch.randint(2, 299, (batch, tokens), generator=generator).to(device)
    losses, static, step_seconds = [], 0.0, 0.0
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    for _ in range(2):  # the second step starts with the gradients and the AdamW state the first one made
        static = settle()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=False)
        with torch.autocast("cuda" if cuda else "cpu", dtype=half, enabled=half is not None):
            loss = model(
                speech=speech,
                speech_lengths=torch.full((batch,), samples, device=device),
                text=text,
                text_lengths=torch.full((batch,), tokens, device=device),
            )[0]
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))  # waits for the device
        step_seconds = time.perf_counter() - start
    peak = peak_mb()
    return {
        "device": device,
        "batch": batch,
        "seconds": seconds,
        "audio_seconds": batch * seconds,
        "train_cnn": train_cnn,
        "precision": precision,
        "peak_mb": peak - process,
        "static_mb": static - process,
        "activations_mb": peak - static,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "loss": losses[-1],
        "step_seconds": step_seconds,
    }


def fit(points: list[dict]) -> tuple[float, float]:
    """Least squares peak_mb = a + b * audio_seconds."""
    xs, ys = [p["audio_seconds"] for p in points], [p["peak_mb"] for p in points]
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def plan(a_mb: float, b_mb: float) -> dict[int, int]:
    """Per card (GB): the largest batch_bins (samples) whose predicted peak is <= MARGIN x the card."""
    return {gb: max(0, int((MARGIN * gb * 1024 - a_mb) / b_mb * SAMPLE_RATE)) for gb in CARDS_GB}


def _cnn(train_cnn: bool) -> str:
    return "trained" if train_cnn else "frozen"


def fits(rows: list[dict]) -> list[dict]:
    """Per (CNN, precision) with >= 2 points outside the check point: the fit, the check, the plan."""
    out = []
    for train_cnn in (True, False):
        for precision in ("fp32", "bf16", "fp16"):
            group = [r for r in rows if r["train_cnn"] == train_cnn and r["precision"] == precision]
            points = [r for r in group if (r["batch"], r["seconds"]) != CHECK]
            if len(points) < 2:
                continue
            a, b = fit(points)
            check = next((r for r in group if (r["batch"], r["seconds"]) == CHECK), None)
            out.append({
                "cnn": _cnn(train_cnn), "precision": precision, "a_mb": a, "b_mb_per_s": b,
                "check": None if check is None else {"predicted_mb": a + b * check["audio_seconds"], "measured_mb": check["peak_mb"]},
                "batch_bins": {str(gb): bins for gb, bins in plan(a, b).items()},
            })  # fmt: skip
    return out


def predicted_mb(row: dict, fitted: dict) -> float | None:
    """The peak a fit file predicts for a measured row (same architecture; fp16 by bf16's fit), or None."""
    if (fitted["arch"], fitted["preset"]) != (row["arch"], row["preset"]):
        return None
    precision = "bf16" if row["precision"] == "fp16" else row["precision"]
    for f in fitted["fits"]:
        if (f["cnn"], f["precision"]) == (_cnn(row["train_cnn"]), precision):
            return f["a_mb"] + f["b_mb_per_s"] * row["audio_seconds"]
    return None


def _upstream_macs(arch: str, preset: str, seconds: float) -> float:
    """The dense upstream's MACs for one utterance of ``seconds`` (the cost model's count)."""
    from espnet_prune.pruning.arch import UpstreamArch
    from espnet_prune.pruning.cost import upstream_cost
    from espnet_prune.pruning.presets import PRESETS

    return float(upstream_cost(UpstreamArch.from_model_cfg(arch, PRESETS[preset], None), seconds).macs)


def sweep_estimate(record: dict) -> list[str]:
    """The paper's sweep as egs2/librispeech_100 runs it: steps and GPU-hours per card at the planned
    batch (trained CNN, bf16), from the upstream's MACs and the cards' spec throughput."""
    import yaml

    planned = next((f for f in record["fits"] if (f["cnn"], f["precision"]) == ("trained", "bf16")), None)
    if planned is None:
        return []
    epochs = yaml.safe_load((REPO / record["config"]).read_text())["max_epoch"]
    sweep = re.search(r'^ +--pruning_sweep "([^"]*)"', SWEEP_RUN.read_text(), re.M).group(1).split()  # the call, not the usage comment
    models = len(sweep) + 1  # and the unpruned baseline
    macs_per_second = _upstream_macs(record["arch"], record["preset"], 10.0) / 10.0
    flops = 6 * macs_per_second * TRAIN_SECONDS * epochs  # 2 FLOPs a MAC, backward twice the forward
    lines = [
        "",
        f"The sweep of `{SWEEP_RUN.relative_to(REPO)}` ({models} models: unpruned and {' '.join(sweep)}), {epochs} epochs of "
        f"train-clean-100 ({TRAIN_SECONDS / 3600:.1f} h) each, at the planned batch (trained CNN, bf16). Compute: the upstream's "
        f"{macs_per_second / 1e9:.2f} GMACs per second of audio x 6 FLOPs (forward, backward), the encoder, decoder and "
        f"CTC add ~1 %; every model counted unpruned (an upper bound: the pruned ones shrink as they train). Wall time "
        f"at {UTILISATION:.1%} of the card's dense bf16 peak, as measured on an H200 (`RESULTS_device_check.md`; the other cards "
        f"assumed alike).",
        "",
        "| card | batch_bins | batches per epoch | batches per model | GPU-hours per model | GPU-hours for the sweep |",
        "|---|---|---|---|---|---|",
    ]
    for gb in CARDS_GB:
        name, tflops = CARD_SPECS[gb]
        bins = planned["batch_bins"][str(gb)]
        if bins <= 0:
            lines.append(f"| {name} ({gb} GB) | does not fit | - | - | - | - |")
            continue
        steps = math.ceil(TRAIN_SECONDS * SAMPLE_RATE / bins)
        hours = flops / (tflops * 1e12 * UTILISATION) / 3600
        lines.append(f"| {name} ({gb} GB, {tflops:g} TFLOP/s) | {bins:,} | {steps:,} | {steps * epochs:,} | {hours:.1f} | {hours * models:.0f} |")
    return lines


def report(rows: list[dict], config: Path, fitted: dict | None = None) -> str:
    """The measured points, and with >= 2 points per group the fits, the plan and the sweep estimate."""
    first = rows[0]
    where = "CUDA allocator peak" if first["device"].startswith("cuda") else "CPU peak RSS minus the process's own size"
    lines = [
        f"One training step (2nd of 2) of `{config.relative_to(REPO)}`'s model with a {first['arch']} {first['preset']} upstream "
        f"({first['params_m']:.1f} M parameters in all) on {first['device']}, {where}, MB.",
        "",
        "| CNN | precision | batch x seconds | peak | static (weights, grads, AdamW) | activations | per second of audio "
        "| step (s) | TFLOP/s (6 x upstream MACs) |" + (" predicted (fit file) | measured / predicted |" if fitted else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if fitted else ""),
    ]
    for r in rows:
        flops = 6 * r["batch"] * _upstream_macs(r["arch"], r["preset"], r["seconds"])
        timed = f"{r['step_seconds']:.2f} | {flops / r['step_seconds'] / 1e12:.1f}" if "step_seconds" in r else "- | -"
        line = (
            f"| {_cnn(r['train_cnn'])} | {r['precision']} | {r['batch']} x {r['seconds']:g} s | "
            f"{r['peak_mb']:.0f} | {r['static_mb']:.0f} | {r['activations_mb']:.0f} | {r['activations_mb'] / r['audio_seconds']:.0f} | "
            f"{timed} |"
        )
        if fitted:
            predicted = predicted_mb(r, fitted)
            line += " - | - |" if predicted is None else f" {predicted:.0f} | {r['peak_mb'] / predicted:.2f} |"
        lines.append(line)
    pairs = [
        (r, h) for r in rows for h in rows
        if r["precision"] == "fp32" and h["precision"] != "fp32"
        and (r["train_cnn"], r["batch"], r["seconds"]) == (h["train_cnn"], h["batch"], h["seconds"])
    ]  # fmt: skip
    if pairs:
        worst = max(abs(h["loss"] / r["loss"] - 1) for r, h in pairs)
        lines += ["", f"Autocast vs fp32, the same model and batch: the step's training loss differs by at most {worst:.2%} "
                      f"({len(pairs)} pairs; the expected cost is computed in fp32 either way, `tests/test_amp.py`)."]  # fmt: skip
    fitted_here = fits(rows)
    if not fitted_here:
        return "\n".join(lines) + "\n"
    in_fit = sorted({(r["batch"], r["seconds"]) for r in rows} - {CHECK})
    lines += [
        "",
        f"Fit peak = a + b x (seconds of audio per batch) on {', '.join(f'{b} x {s:g} s' for b, s in in_fit)}; "
        f"check point {CHECK[0]} x {CHECK[1]:g} s (not in the fit; - if not measured); plan: largest `batch_bins` with predicted "
        f"peak <= {MARGIN:.0%} of the card.",
        "",
        "| CNN | precision | a (MB) | b (MB/s) | check: predicted / measured | " + " | ".join(f"batch_bins {gb} GB" for gb in CARDS_GB) + " |",
        "|---|---|---|---|---|" + "---|" * len(CARDS_GB),
    ]
    for f in fitted_here:
        check = f["check"]
        checked = "-" if check is None else (
            f"{check['predicted_mb']:.0f} / {check['measured_mb']:.0f} ({check['predicted_mb'] / check['measured_mb'] - 1:+.1%})"
        )
        bins = f["batch_bins"]
        lines.append(
            f"| {f['cnn']} | {f['precision']} | {f['a_mb']:.0f} | {f['b_mb_per_s']:.0f} | {checked} | "
            + " | ".join(f"{bins[str(gb)]:,} ({bins[str(gb)] / SAMPLE_RATE:.0f} s)" for gb in CARDS_GB)
            + " |"
        )
    lines += sweep_estimate({"arch": first["arch"], "preset": first["preset"], "config": str(config.relative_to(REPO)), "fits": fitted_here})
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--arch", choices=["wav2vec2", "hubert", "wavlm"], default="wav2vec2")
    parser.add_argument("--preset", default="base", help="upstream size (make_upstream's presets; tiny for a quick run)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda[:N]")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16", "fp16"], default=["fp32", "bf16"],
                        help="fp32, or autocast to bf16/fp16 (fp16: GPUs)")  # fmt: skip
    parser.add_argument("--cnn", nargs="+", choices=["trained", "frozen"], default=["trained", "frozen"])
    parser.add_argument("--grid", nargs="+", metavar="BxS", help="batch x seconds points, e.g. 1x2 1x4 (default: the fit's and the check's)")
    parser.add_argument("--jobs", type=int, default=1, help="points measured at a time (each in its own process)")
    parser.add_argument("--fits", type=Path, help="a JSON this script wrote: its prediction beside each point")
    parser.add_argument("--out", type=Path, help="also write the report here (markdown), and the points and fits beside it (.json)")
    parser.add_argument("--from_json", type=Path, help="report the points of a JSON this script wrote, measuring nothing")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.from_json:
        record = json.loads(args.from_json.read_text())
        print(report(record["rows"], REPO / record["config"]))
        return
    if args.one:
        print(json.dumps(measure(args.config, args.arch, args.preset, args.device, **json.loads(args.one))))
        return
    grid = [tuple(float(v) for v in p.split("x")) for p in args.grid] if args.grid else [*GRID, CHECK]
    points = [
        {"batch": int(b), "seconds": s, "train_cnn": cnn == "trained", "precision": precision}
        for cnn in args.cnn for precision in args.precisions for b, s in grid
    ]  # fmt: skip

    def child(point: dict) -> dict:
        cmd = [sys.executable, "-W", "ignore", __file__, "--config", str(args.config), "--arch", args.arch,
               "--preset", args.preset, "--device", args.device, "--one", json.dumps(point)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0:
            raise RuntimeError(f"{point}: {done.stderr[-2000:]}")
        return {"arch": args.arch, "preset": args.preset, **json.loads(done.stdout.strip().splitlines()[-1])}

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(child, points))
    fitted = json.loads(args.fits.read_text()) if args.fits and args.fits.exists() else None
    text = report(rows, args.config.resolve(), fitted)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        record = {"arch": args.arch, "preset": args.preset, "config": str(args.config.resolve().relative_to(REPO)), "rows": rows, "fits": fits(rows)}
        args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
