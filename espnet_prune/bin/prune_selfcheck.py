"""Prune a tiny upstream while it learns a synthetic task, and check that the budget is met.

The task is generated in-process: classify which of 8 tones (log-spaced 200-3400 Hz, random
phase and level, in noise) a 1 s clip holds, with the upstream + mean pooling + a linear layer.
The upstream is trained with the pruning objective of ``--method`` at ``--target``; at the end
it is shrunk, and the expected (from gate probabilities) and counted (shrunk model) sparsities
are printed, with the share of CNN and Transformer MACs removed and the task loss at the start
and at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import warnings
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from espnet_prune.pruning.budget import sparsities
from espnet_prune.pruning.cost import upstream_cost
from espnet_prune.pruning.objective import (
    METHODS,
    PruningObjective,
    format_summary,
    gate_conf_for,
    param_groups,
    pruning_summary,
)
from espnet_prune.pruning.presets import make_checkpoint

if TYPE_CHECKING:  # importing it loads S3PRL's hub: done on first use
    from espnet_prune.pruning.upstream import SSLUpstream

SAMPLE_RATE = 16000
NUM_CLASSES = 8
# The tiny preset, pre-LN, without dropout (so the short run learns fast).
SELFCHECK_MODEL = dict(extractor_mode="layer_norm", layer_norm_first=True, dropout=0.0, attention_dropout=0.0)


def tone_batch(batch: int, seconds: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(wavs (B, L), labels (B,)): one tone per clip in white noise."""
    n = round(seconds * SAMPLE_RATE)
    labels = torch.randint(NUM_CLASSES, (batch,), generator=generator)
    freqs = 200.0 * (17.0 ** (labels.float() / (NUM_CLASSES - 1)))
    t = torch.arange(n) / SAMPLE_RATE
    phase = torch.rand(batch, 1, generator=generator) * 2 * math.pi
    level = 0.3 + 0.7 * torch.rand(batch, 1, generator=generator)
    noise = 0.3 * torch.randn(batch, n, generator=generator)
    return level * torch.sin(2 * math.pi * freqs[:, None] * t + phase) + noise, labels


def train(
    method: str, target: float, steps: int, seed: int, batch: int = 4, seconds: float = 0.5, **controller: Any
) -> tuple[SSLUpstream, PruningObjective, list[float], list[dict[str, float]]]:
    """Train the tiny upstream on the tone task with the pruning objective.

    ``controller`` holds further :class:`PruningObjective` options (``damping``, ``damping_after_warmup``).

    Returns the gated upstream (eval mode), its objective, the task loss of every step and the
    expected sparsity of every step.
    """
    from espnet_prune.pruning.upstream import load_upstream

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tiny.pt")
        torch.save(make_checkpoint("wav2vec2", "tiny", seed=seed, **SELFCHECK_MODEL), path)
        upstream = load_upstream(path)
    gates = upstream.attach_gates(**gate_conf_for(method))
    objective = PruningObjective(
        gates, method=method, target=target, warmup_steps=int(0.3 * steps), macs_seconds=seconds, reg_lr=0.1,
        **controller,
    )
    head = nn.Linear(upstream.arch.encoder_dim, NUM_CLASSES)
    model = nn.ModuleDict({"upstream": upstream, "head": head, "objective": objective})
    optimizer = torch.optim.AdamW(param_groups(model, lr=1e-3, reg_lr=objective.reg_lr))
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.full((batch,), round(seconds * SAMPLE_RATE))
    losses, trajectory = [], []
    model.train()
    for _ in range(steps):
        wavs, labels = tone_batch(batch, seconds, generator)
        hs, hs_len = upstream(wavs, lengths)
        pooled = hs[-1].mean(dim=1)
        task = F.cross_entropy(head(pooled), labels)
        reg, stats = objective()
        optimizer.zero_grad()
        (task + reg).backward()
        optimizer.step()
        losses.append(float(task))
        trajectory.append({name: float(stats[f"sparsity_{name}"]) for name in objective.constraints})
    model.eval()
    return upstream, objective, losses, trajectory


def run(method: str, target: float, steps: int, seed: int, batch: int = 4, seconds: float = 0.5) -> dict:
    upstream, objective, losses, _ = train(method, target, steps, seed, batch, seconds)
    with torch.no_grad():
        expected = {name: float(s) for name, s in objective.expected_sparsity().items()}
    dense = objective.dense
    dense_arch = upstream.arch
    arch = upstream.shrink()
    counted_cost = upstream_cost(arch, seconds)
    counted = sparsities(counted_cost, dense, objective.constraints)
    window = max(1, steps // 10)
    return {
        "method": method,
        "targets": objective.final_targets,
        "expected": expected,
        "counted": counted,
        "cnn_macs_removed": 1.0 - counted_cost.cnn_macs / dense.cnn_macs,
        "transformer_macs_removed": 1.0 - counted_cost.transformer_macs / dense.transformer_macs,
        "task_loss": {"first": sum(losses[:window]) / window, "last": sum(losses[-window:]) / window},
        "summary": pruning_summary(dense_arch, arch, seconds),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=sorted(METHODS), default="mac")
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object (without the per-layer summary)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    try:
        result = run(args.method, args.target, args.steps, args.seed)
    except ValueError as err:
        sys.exit(f"error: {err}")
    summary = result.pop("summary")
    if args.json:
        print(json.dumps(result))
        return
    print(format_summary(summary))
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
