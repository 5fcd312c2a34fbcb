"""Training-step time and peak memory of fine-tuning with and without the pruning gates.

Each mode runs in its own process (so peak memory is its own): ``plain`` fine-tunes the upstream
with a linear head; ``pruned`` adds every gate and the HJ-Pruning-MAC objective (the extra work
of pruning while fine-tuning). Prints the median step time, their ratio (goal: <= 1.15x), and
the peak memory (CPU: max resident set size; CUDA: max allocated).

    tools/venv/bin/python benchmarks/train_overhead.py [--preset base] [--batch 2] [--seconds 4] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F


def run_mode(args: argparse.Namespace) -> dict:
    from espnet_prune.pruning.objective import PruningObjective, param_groups
    from espnet_prune.pruning.presets import make_checkpoint
    from espnet_prune.pruning.upstream import load_upstream

    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dense.pt")
        torch.save(make_checkpoint("wav2vec2", args.preset, seed=0), path)
        upstream = load_upstream(path)
    upstream.model.feature_grad_mult = 1.0  # fine-tune the CNN in both modes, as pruning it requires
    head = torch.nn.Linear(upstream.arch.encoder_dim, 32)
    modules = torch.nn.ModuleDict({"upstream": upstream, "head": head})
    objective = None
    if args.mode == "pruned":
        objective = PruningObjective(upstream.attach_gates(), method="mac", target=0.5, warmup_steps=10,
                                     macs_seconds=args.seconds)
        modules["objective"] = objective
    modules.to(device).train()
    optimizer = torch.optim.AdamW(param_groups(modules, lr=1e-5, reg_lr=0.02))
    wavs = torch.randn(args.batch, round(args.seconds * 16000), device=device)
    lengths = torch.full((args.batch,), wavs.size(1), device=device)
    labels = torch.randint(32, (args.batch,), device=device)
    times = []
    for step in range(args.steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        hs, _ = upstream(wavs, lengths)
        loss = F.cross_entropy(head(hs[-1].mean(1)), labels)
        if objective is not None:
            loss = loss + objective()[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step > 0:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"mode": args.mode, "step_s": statistics.median(times), "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", choices=("plain", "pruned"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    results = {}
    for mode in ("plain", "pruned"):
        cmd = [sys.executable, __file__, "--mode", mode] + [
            f"--{k}={v}" for k, v in vars(args).items() if k not in ("mode",)
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    plain, pruned = results["plain"], results["pruned"]
    print(f"wav2vec2-{args.preset}, batch {args.batch} x {args.seconds:g} s, {args.device}, "
          f"{torch.get_num_threads()} threads, median of {args.steps} steps")
    print(f"{'mode':<8} {'step (s)':>9} {'peak (MiB)':>11}")
    for r in (plain, pruned):
        print(f"{r['mode']:<8} {r['step_s']:>9.3f} {r['peak_mib']:>11.0f}")
    print(f"step time ratio pruned/plain: {pruned['step_s'] / plain['step_s']:.3f} (goal <= 1.15); "
          f"peak memory ratio: {pruned['peak_mib'] / plain['peak_mib']:.3f}")


if __name__ == "__main__":
    main()
