"""Inference speed of a dense vs shrunk wav2vec2-base upstream (random weights), on CPU or a GPU.

For each keep fraction, prints the MAC ratio (shrunk / dense, from the cost model) next to the
measured wall-time ratio (median of several forward passes, same process, same input). Goal:
measured speed-up >= 0.9 x the MAC reduction.

    tools/venv/bin/python benchmarks/shrink_speed.py [--seconds 10] [--batch 1] [--runs 5]
        [--keep 0.7 0.5 0.3] [--device cuda --dtype bf16]

At batch 1 a GPU is bound by kernel launches, not arithmetic (the time hardly moves with the
MACs): ``--batch 16`` shows what a shrunk model saves where the card is busy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings

import torch

from espnet_prune.pruning import UpstreamGates, build_model, read_checkpoint, set_random_keep, shrink_upstream, upstream_cost
from espnet_prune.pruning.presets import make_checkpoint


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # kernels run asynchronously: a timer must wait for them
        torch.cuda.synchronize(device)


def time_forward(model: torch.nn.Module, wav: torch.Tensor, runs: int) -> float:
    with torch.inference_mode():
        model.extract_features(wav, None)  # warm-up
        times = []
        for _ in range(runs):
            _sync(wav.device)
            start = time.perf_counter()
            model.extract_features(wav, None)
            _sync(wav.device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="wav2vec2", choices=("wav2vec2", "hubert", "wavlm"))
    parser.add_argument("--preset", default="base")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=1, help="utterances a forward pass")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=float, nargs="+", default=[0.7, 0.5, 0.3])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights and input (half precision: GPUs)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dense.pt")
        torch.save(make_checkpoint(args.arch, args.preset, seed=0), path)
        ckpt = read_checkpoint(path)
    wav = torch.randn(args.batch, round(args.seconds * 16000), device=device, dtype=dtype)
    dense_model = build_model(ckpt).to(device, dtype).eval()
    dense_cost = upstream_cost(ckpt.arch, args.seconds)
    dense_time = time_forward(dense_model, wav, args.runs)
    rows = [dict(keep=1.0, model="dense (S3PRL modules)", mac_ratio=1.0, time_s=dense_time, time_ratio=1.0)]
    for keep in [1.0] + args.keep:
        model = build_model(ckpt)
        gates = UpstreamGates(ckpt.arch)
        gates.attach(model)
        set_random_keep(gates, keep, torch.Generator().manual_seed(0))
        arch = shrink_upstream(model)
        model = model.to(device, dtype).eval()
        t = time_forward(model, wav, args.runs)
        rows.append(dict(
            keep=keep,
            model="shrunk",
            mac_ratio=upstream_cost(arch, args.seconds).macs / dense_cost.macs,
            time_s=t,
            time_ratio=t / dense_time,
        ))
    if args.json:
        print(json.dumps({"device": str(device), "dtype": args.dtype, "threads": torch.get_num_threads(), "batch": args.batch, "rows": rows}))
        return
    print(f"{args.arch}-{args.preset}, {args.seconds:g} s input, batch {args.batch}, {device} {args.dtype}, {torch.get_num_threads()} threads, "
          f"median of {args.runs} runs; dense {dense_cost.macs / 1e9:.1f} GMACs")
    print(f"{'model':<22} {'keep':>5} {'MAC ratio':>10} {'time (s)':>9} {'time ratio':>11} {'speed-up / MAC reduction':>25}")
    for r in rows:
        achieved = (1 / r["time_ratio"]) / (1 / r["mac_ratio"])
        print(f"{r['model']:<22} {r['keep']:>5.2f} {r['mac_ratio']:>10.3f} {r['time_s']:>9.3f} {r['time_ratio']:>11.3f} {achieved:>25.2f}")


if __name__ == "__main__":
    main()
