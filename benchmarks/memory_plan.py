"""Memory plan for the real recipes: how much audio one training step can hold on a 24, 40 or 80 GB card.

One training step (forward, backward, AdamW step) of a recipe's whole model, built by our ESPnet
task from the recipe's own config (upstream of the base architecture with every gate and the
pruning objective, encoder, attention decoder, CTC; 300 BPE units), on random audio with ~4 tokens
per second, at several batch sizes and lengths; with the CNN trained (``train_cnn: true``, as the
pruned configs must) and frozen, in fp32 and under bf16 autocast.

Peak memory here is the CPU's: each point runs in its own process; before each step freed memory
is returned to the system (``malloc_trim``) and the kernel's peak resident size is restarted
(``/proc/self/clear_refs``), so the peak (``VmHWM``) is the second step's. Reported minus the
process's size before the model was built (Python, torch and ESPnet themselves: on a GPU run they
stay in host memory). Split: ``static`` = weights, gradients and the AdamW state (resident when the
second step starts), ``activations`` = peak - static. Fit per (CNN, precision): peak = a + b x (seconds of audio in the batch). The plan:
the largest ``batch_bins`` (16 kHz samples per batch: ESPnet's ``batch_type: numel`` counts the
speech samples, and the few tokens) whose predicted peak is at most 80 % of the card. A GPU adds
its CUDA context and allocator slack (the 20 % margin is for them; ``device_check.sh`` measures the
planned batch on a GPU when one is lent). The check point (not in the fit) compares prediction and
measurement.

    tools/venv/bin/python benchmarks/memory_plan.py --jobs 2 --out benchmarks/RESULTS_memory_plan.md
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "egs2/librispeech_100/asr1/conf/train_asr_pruned.yaml"
SAMPLE_RATE = 16000
TOKENS_PER_SECOND = 4  # LibriSpeech reads at ~2.7 words/s; ~1.5 BPE-300 units per word
CARDS_GB = (24, 40, 80)
MARGIN = 0.8
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


def measure(config: Path, arch: str, preset: str, batch: int, seconds: float, train_cnn: bool, precision: str) -> dict:
    """One point, in this process: peak, static and activation memory (MB) of a training step."""
    import torch

    from espnet_prune.pruning.presets import make_checkpoint
    from espnet_prune.tasks.asr import ASRPruneTask

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    process = _settle()  # Python, torch, ESPnet: host memory of a GPU run, not the card's
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(make_checkpoint(arch, preset, seed=0), f"{tmp}/upstream.pt")
        Path(f"{tmp}/tokens.txt").write_text("\n".join(["<blank>", "<unk>", *[f"u{i}" for i in range(297)], "<sos/eos>"]) + "\n")
        args = ASRPruneTask.get_parser().parse_args(
            ["--config", str(config), "--token_list", f"{tmp}/tokens.txt", "--token_type", "bpe", "--output_dir", tmp,
             "--frontend_conf", f"upstream_ckpt={tmp}/upstream.pt", "--frontend_conf", f"train_cnn={str(train_cnn).lower()}"]
        )  # fmt: skip
        model = ASRPruneTask.build_model(args)
    optimizer = ASRPruneTask.build_optimizers(args, model)[0]
    model.train()
    samples = round(seconds * SAMPLE_RATE)
    tokens = max(1, round(seconds * TOKENS_PER_SECOND))
    generator = torch.Generator().manual_seed(0)
    speech = 0.1 * torch.randn(batch, samples, generator=generator)
    text = torch.randint(2, 299, (batch, tokens), generator=generator)
    losses, static = [], 0.0
    for _ in range(2):  # the second step starts with the gradients and the AdamW state the first one made
        static = _settle()
        optimizer.zero_grad(set_to_none=False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(
                speech=speech,
                speech_lengths=torch.full((batch,), samples),
                text=text,
                text_lengths=torch.full((batch,), tokens),
            )[0]
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    peak = _status_mb("VmHWM")
    return {
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


def report(rows: list[dict], arch: str, config: Path) -> str:
    fitted = sorted({(r["batch"], r["seconds"]) for r in rows} - {CHECK})
    lines = [
        f"One training step (2nd of 2) of `{config.relative_to(REPO)}`'s model with a {arch} upstream "
        f"({rows[0]['params_m']:.1f} M parameters in all), CPU peak RSS minus the process's own size, MB.",
        "",
        "| CNN | precision | batch x seconds | peak | static (weights, grads, AdamW) | activations | per second of audio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {'trained' if r['train_cnn'] else 'frozen'} | {r['precision']} | {r['batch']} x {r['seconds']:g} s | "
            f"{r['peak_mb']:.0f} | {r['static_mb']:.0f} | {r['activations_mb']:.0f} | {r['activations_mb'] / r['audio_seconds']:.0f} |"
        )
    lines += [
        "",
        f"Fit peak = a + b x (seconds of audio per batch) on {', '.join(f'{b} x {s:g} s' for b, s in fitted)}; "
        f"check point {CHECK[0]} x {CHECK[1]:g} s (not in the fit; - if not measured); plan: largest `batch_bins` with predicted "
        f"peak <= {MARGIN:.0%} of the card.",
        "",
        "| CNN | precision | a (MB) | b (MB/s) | check: predicted / measured | " + " | ".join(f"batch_bins {gb} GB" for gb in CARDS_GB) + " |",
        "|---|---|---|---|---|" + "---|" * len(CARDS_GB),
    ]
    for train_cnn in (True, False):
        for precision in ("fp32", "bf16"):
            group = [r for r in rows if r["train_cnn"] == train_cnn and r["precision"] == precision]
            points = [r for r in group if (r["batch"], r["seconds"]) != CHECK]
            check = [r for r in group if (r["batch"], r["seconds"]) == CHECK]
            if len(points) < 2:
                continue
            a, b = fit(points)
            checked = "-"
            if check:
                predicted = a + b * check[0]["audio_seconds"]
                checked = f"{predicted:.0f} / {check[0]['peak_mb']:.0f} ({predicted / check[0]['peak_mb'] - 1:+.1%})"
            bins = plan(a, b)
            lines.append(
                f"| {'trained' if train_cnn else 'frozen'} | {precision} | {a:.0f} | {b:.0f} | {checked} | "
                + " | ".join(f"{bins[gb]:,} ({bins[gb] / SAMPLE_RATE:.0f} s)" for gb in CARDS_GB)
                + " |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--arch", choices=["wav2vec2", "hubert", "wavlm"], default="wav2vec2")
    parser.add_argument("--preset", default="base", help="upstream size (make_upstream's presets; tiny for a quick run)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--cnn", nargs="+", choices=["trained", "frozen"], default=["trained", "frozen"])
    parser.add_argument("--grid", nargs="+", metavar="BxS", help="batch x seconds points, e.g. 1x2 1x4 (default: the fit's and the check's)")
    parser.add_argument("--jobs", type=int, default=1, help="points measured at a time (each in its own process)")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.config, args.arch, args.preset, **json.loads(args.one))))
        return
    grid = [tuple(float(v) for v in p.split("x")) for p in args.grid] if args.grid else [*GRID, CHECK]
    points = [
        {"batch": int(b), "seconds": s, "train_cnn": cnn == "trained", "precision": precision}
        for cnn in args.cnn for precision in args.precisions for b, s in grid
    ]  # fmt: skip

    def child(point: dict) -> dict:
        cmd = [sys.executable, "-W", "ignore", __file__, "--config", str(args.config), "--arch", args.arch,
               "--preset", args.preset, "--one", json.dumps(point)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0:
            raise RuntimeError(f"{point}: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(child, points))
    text = report(rows, f"{args.arch} {args.preset}", args.config.resolve())
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
