"""Shrink the upstream of a pruned ESPnet ASR model into a normal ESPnet model directory.

``python -m espnet_prune.bin.asr_shrink --config exp/X/config.yaml --model_file exp/X/valid.acc.ave.pth
--out_dir exp/X_shrunk`` writes, all at once (the directory appears only when complete):
``upstream.safetensors`` (the shrunk upstream), ``config.yaml`` (``frontend_conf.upstream_ckpt`` ->
that file, ``pruning_conf: null``, no ``distill_conf``: the teacher was for training), ``model.pth`` (state dict of the shrunk architecture) and
``pruning_summary.json`` (what remains of each layer, and the budget: targets with the expected and
counted sparsity at the objective's ``macs_seconds``; its table is printed).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
import yaml

from espnet_prune.data.atomic import atomic_directory
from espnet_prune.frontend.s3prl_prune import S3prlPruneFrontend
from espnet_prune.pruning.objective import PruningObjective, format_summary, pruning_summary
from espnet_prune.tasks.asr import ASRPruneTask

UPSTREAM_NAME, CONFIG_NAME, MODEL_NAME = "upstream.safetensors", "config.yaml", "model.pth"
SUMMARY_NAME = "pruning_summary.json"


def budget_record(objective: PruningObjective) -> dict:
    """Targets, expected and counted sparsity at ``macs_seconds`` for pruning_summary.json (and a
    warning on stderr when the target had not finished warming up: the shrunk model then meets the
    lower target the training had reached)."""
    targets = objective.current_targets()
    if targets != objective.final_targets:
        print(
            f"asr_shrink: warning: training stopped during the target's warm-up (step {int(objective.step)} of "
            f"{objective.warmup_steps}); shrinking to the targets reached so far {targets}, not {objective.final_targets}",
            file=sys.stderr,
        )
    with torch.no_grad():
        expected = {name: float(value) for name, value in objective.expected_sparsity().items()}
    return {
        "seconds": objective.macs_seconds,
        "targets": targets,
        "final_targets": objective.final_targets,
        "expected": expected,
        "counted": objective.counted_sparsity(),
    }


def shrink_model_dir(config: Path, model_file: Path, out_dir: Path) -> Path:
    """Shrink and write ``out_dir``; returns the new config path."""
    for path in (config, model_file):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist (the training stage writes it)")
    model, _ = ASRPruneTask.build_model_from_file(config, model_file, "cpu")
    frontend = model.frontend
    if not isinstance(frontend, S3prlPruneFrontend) or frontend.upstream.gates is None:
        raise ValueError(f"{config}: the model has no pruned s3prl_prune frontend to shrink")
    model.eval()
    dense = frontend.upstream.arch
    budget = budget_record(frontend.objective)
    frontend.shrink()
    summary = {**pruning_summary(dense, frontend.upstream.arch), "budget": budget}
    with open(config, encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    new_conf = copy.deepcopy(conf)
    # the path is written as the user gave out_dir, as ESPnet's configs hold paths relative to the recipe
    new_conf["frontend_conf"]["upstream_ckpt"] = str(Path(out_dir) / UPSTREAM_NAME)
    new_conf["frontend_conf"]["pruning_conf"] = None
    new_conf["frontend_conf"].pop("distill_conf", None)
    with atomic_directory(Path(out_dir)) as tmp:
        frontend.upstream.save(tmp / UPSTREAM_NAME)
        with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as f:
            yaml.safe_dump(new_conf, f, sort_keys=False)
        torch.save(model.state_dict(), tmp / MODEL_NAME)
        (tmp / SUMMARY_NAME).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(format_summary(summary))
    return Path(out_dir) / CONFIG_NAME


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="config.yaml of the training run")
    parser.add_argument("--model_file", type=Path, required=True, help="the trained model's .pth")
    parser.add_argument("--out_dir", type=Path, required=True, help="the shrunk model directory to write")
    args = parser.parse_args(argv)
    print(shrink_model_dir(args.config, args.model_file, args.out_dir))


if __name__ == "__main__":
    main()
