"""How closely each pruning method lands on its budget: prune_selfcheck's training, every gate kind on.

For every method and target: the expected sparsity from the gate probabilities at the end of
training, the sparsity the shrunk model counts with the budget's global selection (what the
toolkit does), and what per-gate rounding of the expected L0 (FLOP/CoFi's test-time rule, what
it did before) would have counted from the same gates; the controller's largest overshoot of
the target after the warm-up, and the number of sublayer gates left half open (0.1 < P < 0.9).
Each (method, target) is trained once per seed and per ``--dampings`` value of the objective's
fixed quadratic penalty (0 = the controller without it; ``100@warmup``: 100, applied once the
target has stopped rising); the summary gives the largest misses.

    tools/venv/bin/python benchmarks/budgets.py --seeds 0 1 2 --dampings 0 100 100@warmup --jobs 2 \
        --out benchmarks/RESULTS_budgets.md

One thread per process; --jobs 2 runs two trainings at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

METHODS = ("trf_only", "sep_size", "size", "mac", "size_mac")
TARGETS = (0.3, 0.5, 0.7)


def damping_options(spec: str) -> dict:
    """``"100"`` -> damping from the first step; ``"100@warmup"`` -> from the end of the warm-up."""
    value, _, when = spec.partition("@")
    if when not in ("", "warmup"):
        raise ValueError(f"damping {spec!r}: expected a number, optionally followed by '@warmup'")
    return {"damping": float(value), "damping_after_warmup": when == "warmup"}


def measure(method: str, target: float, steps: int, seed: int, damping: str) -> dict:
    """One training; the row's numbers (or the objective's refusal)."""
    import torch

    from espnet_prune.bin.prune_selfcheck import train
    from espnet_prune.pruning.budget import sparsities
    from espnet_prune.pruning.cost import upstream_cost

    torch.set_num_threads(1)
    try:
        upstream, objective, losses, trajectory = train(method, target, steps, seed, **damping_options(damping))
    except ValueError as err:
        return {"method": method, "target": target, "seed": seed, "damping": damping, "refused": str(err)}
    gates, names = objective.gates, objective.constraints
    with torch.no_grad():
        expected = {name: float(v) for name, v in objective.expected_sparsity().items()}
    counted = objective.counted_sparsity()
    gates.set_budget(None)  # the same gates, each rounding on its own
    rounding = sparsities(upstream_cost(gates.arch, objective.macs_seconds, gates.final_units()), objective.dense, names)
    gates.set_budget(objective)
    half_open = sum(
        1 for (kind, _), gate in gates.gate_items() if kind in ("attention", "ffn") and 0.1 < float(gate.prob_nonzero()) < 0.9
    )
    after_warmup = trajectory[objective.warmup_steps :]
    overshoot = max(max(s[name] - objective.final_targets[name] for s in after_warmup) for name in names)
    return {
        "method": method,
        "target": target,
        "seed": seed,
        "damping": damping,
        "expected": expected,
        "counted": counted,
        "rounding": rounding,
        "overshoot": overshoot,
        "half_open": half_open,
        "loss_last": sum(losses[-40:]) / len(losses[-40:]),
    }


def table(rows: list[dict]) -> str:
    def cell(values: dict[str, float]) -> str:
        return " / ".join(f"{v:.3f}" for v in values.values())

    lines = [
        "| damping | method | target | seed | expected | counted (budget) | counted (per-gate rounding) | max overshoot after warm-up | half-open sublayers | task loss (last 40) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = f"| {r['damping']} | {r['method']}"
        if "refused" in r:
            lines.append(f"{head} | {r['target']:.2f} | {r['seed']} | refused: {r['refused']} | | | | | |")
            continue
        lines.append(
            f"{head} ({' / '.join(r['counted'])}) | {r['target']:.2f} | {r['seed']} | {cell(r['expected'])} | {cell(r['counted'])} | "
            f"{cell(r['rounding'])} | {r['overshoot']:+.3f} | {r['half_open']} | {r['loss_last']:.3f} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """Per damping: the largest |expected - target| and |counted - target| over every cost and run."""
    lines = [
        "| damping | runs | max abs(expected - target) | runs with it > 0.02 | max abs(counted - target) | runs with it > 0.01 | mean task loss (last 40) |",
        "|---|---|---|---|---|---|---|",
    ]
    for damping in dict.fromkeys(r["damping"] for r in rows):
        done = [r for r in rows if r["damping"] == damping and "refused" not in r]
        exp = [max(abs(v - r["target"]) for v in r["expected"].values()) for r in done]
        cnt = [max(abs(v - r["target"]) for v in r["counted"].values()) for r in done]
        loss = sum(r["loss_last"] for r in done) / len(done)
        lines.append(
            f"| {damping} | {len(done)} | {max(exp):.3f} | {sum(e > 0.02 for e in exp)} | {max(cnt):.3f} | "
            f"{sum(c > 0.01 for c in cnt)} | {loss:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--targets", nargs="+", type=float, default=list(TARGETS))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--dampings", nargs="+", default=["0"], help="e.g. 0 100 100@warmup")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument("--one", nargs=4, metavar=("METHOD", "TARGET", "SEED", "DAMPING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.one:
        method, target, seed, damping = args.one
        print(json.dumps(measure(method, float(target), args.steps, int(seed), damping)))
        return

    def child(job: tuple) -> dict:
        cmd = [sys.executable, "-W", "ignore", __file__, "--one", *map(str, job), "--steps", str(args.steps)]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0:
            raise RuntimeError(f"{job}: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    jobs = [(m, t, s, d) for d in args.dampings for m in args.methods for t in args.targets for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(child, jobs))
    text = (
        f"prune_selfcheck training ({args.steps} steps, seeds {' '.join(map(str, args.seeds))}, tiny wav2vec2, "
        "every gate kind on); sparsity per constrained cost\n\n" + summary(rows) + "\n\n" + table(rows) + "\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
