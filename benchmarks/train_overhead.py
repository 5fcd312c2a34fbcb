"""Training-step time and peak memory of fine-tuning with and without the pruning gates.

Each mode runs in its own process (so peak memory is its own): ``plain`` fine-tunes the upstream
with a linear head; ``pruned`` adds every gate and the HJ-Pruning-MAC objective (the extra work
of pruning while fine-tuning); ``distill`` adds to that layer-wise distillation from the unpruned
upstream (a teacher forward per batch, CoFi's dynamic matching of 4 layers; the frontend's
``distill_conf``). Prints the median step time, their ratios (goals: pruned <= 1.15x plain,
distill <= 1.6x pruned), and the peak memory (CPU: max resident set size; CUDA: max allocated).

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
    from espnet_prune.pruning.distill import LayerDistillation
    from espnet_prune.pruning.objective import PruningObjective, param_groups
    from espnet_prune.pruning.presets import make_checkpoint
    from espnet_prune.pruning.upstream import load_upstream

    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    tmp = tempfile.TemporaryDirectory()
    path = path_teacher = os.path.join(tmp.name, "dense.pt")
    torch.save(make_checkpoint("wav2vec2", args.preset, seed=0), path)
    upstream = load_upstream(path)
    upstream.model.feature_grad_mult = 1.0  # fine-tune the CNN in both modes, as pruning it requires
    head = torch.nn.Linear(upstream.arch.encoder_dim, 32)
    modules = torch.nn.ModuleDict({"upstream": upstream, "head": head})
    objective = distill = None
    if args.mode in ("pruned", "distill"):
        objective = PruningObjective(upstream.attach_gates(), method="mac", target=0.5, warmup_steps=10,
                                     macs_seconds=args.seconds)
        modules["objective"] = objective
    if args.mode == "distill":
        teacher = load_upstream(path_teacher)
        distill = LayerDistillation(teacher, upstream.num_layers, upstream.arch.encoder_dim, teacher.arch.encoder_dim)
        modules["distill"] = distill
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
        hs, hs_lens = upstream(wavs, lengths)
        loss = F.cross_entropy(head(hs[-1].mean(1)), labels)
        if objective is not None:
            loss = loss + objective()[0]
        if distill is not None:
            loss = loss + distill(hs, distill.teacher_states(wavs, lengths), hs_lens[0])[0]
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
    parser.add_argument("--mode", choices=("plain", "pruned", "distill"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    results = {}
    for mode in ("plain", "pruned", "distill"):
        cmd = [sys.executable, __file__, "--mode", mode] + [
            f"--{k}={v}" for k, v in vars(args).items() if k not in ("mode",)
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    plain, pruned, distill = results["plain"], results["pruned"], results["distill"]
    print(f"wav2vec2-{args.preset}, batch {args.batch} x {args.seconds:g} s, {args.device}, "
          f"{torch.get_num_threads()} threads, median of {args.steps} steps")
    print(f"{'mode':<8} {'step (s)':>9} {'peak (MiB)':>11}")
    for r in (plain, pruned, distill):
        print(f"{r['mode']:<8} {r['step_s']:>9.3f} {r['peak_mib']:>11.0f}")
    print(f"step time ratio pruned/plain: {pruned['step_s'] / plain['step_s']:.3f} (goal <= 1.15); "
          f"peak memory ratio: {pruned['peak_mib'] / plain['peak_mib']:.3f}")
    print(f"step time ratio distill/pruned: {distill['step_s'] / pruned['step_s']:.3f} (goal <= 1.6); "
          f"peak memory ratio: {distill['peak_mib'] / pruned['peak_mib']:.3f}")


if __name__ == "__main__":
    main()
