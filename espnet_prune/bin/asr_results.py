"""Write a recipe's RESULTS.md (ESPnet's style): environment, then one row per model.

    python -m espnet_prune.bin.asr_results --exp_dirs exp/asr_a exp/asr_b \\
        --inference_tag decode_decode_asr --test_sets test_clean --out RESULTS.md

Per model: the pruning method and target, the expected sparsity the gates ended training with
(pruning_summary.json) and the counted sparsity of the shrunk upstream (per cost the method
constrains, at the config's ``macs_seconds``), the scores per test set (``--task asr``: WER from
sclite's ``score_wer/result.txt``; ``--task slu``: intent accuracy, SLU-F1 and transcript WER from
score_slurp's ``score_slu/``), the upstream's parameters and GMACs for a 10 s input (the shrunk
upstream for a pruned model), the real-time factor of decoding (one thread per process) and the
training time read from ESPnet's log. With ``--plots_dir``, the figures go there and RESULTS.md
shows them: the first score (WER, or intent accuracy) against GMACs per test set (one curve per
method), and what remains of each layer of every pruned model. Files are replaced atomically.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import platform
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import yaml

from espnet_prune.asr.score import parse_sclite_summary
from espnet_prune.data.atomic import atomic_file
from espnet_prune.pruning.checkpoint import read_checkpoint
from espnet_prune.plots import plot_layers, plot_tradeoff
from espnet_prune.pruning.budget import sparsities
from espnet_prune.pruning.cost import upstream_cost
from espnet_prune.pruning.objective import METHODS, PruningObjective

COST_SECONDS = 10.0
DEFAULT_MACS_SECONDS = inspect.signature(PruningObjective).parameters["macs_seconds"].default
# ESPnet's reporter: "... 3epoch results: [train] ..., time=1 minute and 2.5 seconds, ..."
_EPOCH_TIME = re.compile(r"epoch results: \[train\].*?time=((?:\d+ hours?, )?(?:\d+ minutes? and )?[\d.]+ seconds)")


Scores = dict[str, Optional[float]]  # column -> value (%), None where not scored


def _sclite_wer(result: Path) -> Optional[float]:
    return float(parse_sclite_summary(result.read_text(encoding="utf-8"))["wer"]) if result.is_file() else None


def asr_scores(decode_dir: Path) -> Scores:
    return {"WER": _sclite_wer(decode_dir / "score_wer" / "result.txt")}


def slu_scores(decode_dir: Path) -> Scores:
    metrics_path = decode_dir / "score_slu" / "metrics.json"
    if not metrics_path.is_file():
        return dict.fromkeys(TASKS["slu"].columns)
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    return {
        "intent acc": 100 * metrics["intent_accuracy"],
        "SLU-F1": 100 * metrics["slu_f1"]["overall"]["f1"],
        "WER": _sclite_wer(decode_dir / "score_slu" / "score_wer" / "result.txt"),
    }


@dataclass(frozen=True)
class Task:
    """What a task's decode directories are scored by: the columns (the first one is plotted)."""

    name: str
    columns: tuple[str, ...]
    read: Callable[[Path], Scores]
    plot_label: str
    plot_name: str
    where: str  # the score files, for the table's caption


TASKS = {
    "asr": Task("ASR", ("WER",), asr_scores, "WER (%)", "wer_vs_gmacs", "WER from sclite's `result.txt` in `{}/score_wer/`"),
    "slu": Task(
        "SLU",
        ("intent acc", "SLU-F1", "WER"),
        slu_scores,
        "intent accuracy (%)",
        "intent_acc_vs_gmacs",
        "intent accuracy, SLU-F1 and transcript WER from `{}/score_slu/` (SLURP's definitions)",
    ),
}


@dataclass
class ModelResult:
    name: str
    method: str
    target: Optional[float]
    counted: Optional[dict[str, float]]  # sparsity of the shrunk upstream per constrained cost
    scores: dict[str, Scores]  # test set -> its scores
    params_m: float
    gmacs: float
    rtf: Optional[float]  # of decoding, and of the upstream inside it (decode.json)
    upstream_rtf: Optional[float]
    train_minutes: Optional[float]
    summary: Optional[dict]  # pruning_summary.json of the shrunk model


def _seconds(text: str) -> float:
    total = 0.0
    for value, unit in re.findall(r"([\d.]+) (hour|minute|second)", text):
        total += float(value) * {"hour": 3600, "minute": 60, "second": 1}[unit]
    return total


def training_minutes(exp_dir: Path) -> Optional[float]:
    """Sum of ESPnet's per-epoch training times in ``exp_dir/train.log`` and in the logs of earlier
    runs that asr.sh moved aside (``train.1.log``, ...: a resumed run logs only its own epochs);
    None if there is none."""
    logs = [exp_dir / "train.log", *exp_dir.glob("train.[0-9]*.log")]
    times = [
        _seconds(m)
        for log in logs
        if log.is_file()
        for m in _EPOCH_TIME.findall(log.read_text(encoding="utf-8", errors="replace"))
    ]
    return sum(times) / 60 if times else None


def model_result(exp_dir: Path, inference_tag: str, test_sets: Sequence[str], task: Task = TASKS["asr"]) -> ModelResult:
    shrunk = exp_dir / "shrunk" / "config.yaml"
    config_path = shrunk if shrunk.is_file() else exp_dir / "config.yaml"
    with open(exp_dir / "config.yaml", encoding="utf-8") as f:
        trained = yaml.safe_load(f)
    with open(config_path, encoding="utf-8") as f:
        used = yaml.safe_load(f)
    pruning = (trained.get("frontend_conf") or {}).get("pruning_conf")
    arch = read_checkpoint(used["frontend_conf"]["upstream_ckpt"]).arch
    cost = upstream_cost(arch, COST_SECONDS)
    counted = None
    if pruning and shrunk.is_file():
        seconds = float(pruning.get("macs_seconds", DEFAULT_MACS_SECONDS))
        dense = upstream_cost(read_checkpoint(trained["frontend_conf"]["upstream_ckpt"]).arch, seconds)
        counted = sparsities(upstream_cost(arch, seconds), dense, METHODS[pruning["method"]].constraints)
    scores: dict[str, Scores] = {}
    decodes = []
    for dset in test_sets:
        decode_dir = exp_dir / inference_tag / dset
        scores[dset] = task.read(decode_dir)
        if (decode_dir / "decode.json").is_file():
            decodes.append(json.loads((decode_dir / "decode.json").read_text()))

    def mean_of(key: str) -> Optional[float]:
        values = [d[key] for d in decodes if d.get(key) is not None]  # decode.json before upstream_rtf lacks it
        return sum(values) / len(values) if values else None

    return ModelResult(
        name=exp_dir.name,
        method=pruning["method"] if pruning else "unpruned",
        target=pruning.get("target") if pruning else None,
        counted=counted,
        scores=scores,
        params_m=float(cost.params) / 1e6,
        gmacs=float(cost.macs) / 1e9,
        rtf=mean_of("rtf"),
        upstream_rtf=mean_of("upstream_rtf"),
        train_minutes=training_minutes(exp_dir),
        summary=json.loads((exp_dir / "shrunk" / "pruning_summary.json").read_text())
        if (exp_dir / "shrunk" / "pruning_summary.json").is_file()
        else None,
    )


def _environment() -> str:
    import espnet
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"- date: `{datetime.datetime.now().astimezone().isoformat(timespec='seconds')}`\n"
        f"- python `{platform.python_version()}`, torch `{torch.__version__}`, espnet `{espnet.__version__}`\n"
        f"- machine: {os.cpu_count()} cores ({cpu}); RTF: CPU seconds per second of audio while decoding, 1 thread per process "
        "(upstream RTF: the time in the model's upstream, within the same decoding)\n"
    )


def write_plots(
    results: Sequence[ModelResult], test_sets: Sequence[str], plots_dir: Path, task: Task = TASKS["asr"]
) -> list[Path]:
    """The figures of :mod:`espnet_prune.plots` for these results; returns their paths."""
    paths = []
    column = task.columns[0]
    for dset in test_sets:
        path = plots_dir / f"{task.plot_name}_{dset}.png"
        points = [(r.method, r.gmacs, r.scores[dset][column]) for r in results]
        plot_tradeoff(points, path, ylabel=task.plot_label, title=dset)
        paths.append(path)
    for r in results:
        if r.summary is not None:
            path = plots_dir / f"layers_{r.name}.png"
            plot_layers(r.summary, path, title=r.name)
            paths.append(path)
    return paths


def results_markdown(
    title: str,
    results: Sequence[ModelResult],
    test_sets: Sequence[str],
    inference_tag: str,
    images: Sequence[str] = (),
    task: Task = TASKS["asr"],
) -> str:
    def num(value: Optional[float], fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    columns = [(d, c) for d in test_sets for c in task.columns]
    def sparsity(counted: Optional[dict[str, float]]) -> str:
        return "-" if counted is None else " / ".join(f"{v:.3f}" for v in counted.values())

    def expected(summary: Optional[dict]) -> str:
        """The gates' expected sparsity at the end of training (what the controller held)."""
        budget = (summary or {}).get("budget")
        return "-" if not budget else sparsity(budget["expected"])

    header = ["model", "method", "target", "expected sparsity", "counted sparsity", *[f"{c} {d}" for d, c in columns], "params (M)", "GMACs (10 s)", "upstream RTF", "decode RTF", "train (min)"]
    rows = [
        [r.name, r.method, num(r.target, ".2f"), expected(r.summary), sparsity(r.counted), *[num(r.scores[d][c], ".1f") for d, c in columns],
         f"{r.params_m:.2f}", f"{r.gmacs:.2f}", num(r.upstream_rtf, ".4f"), num(r.rtf, ".4f"), num(r.train_minutes, ".1f")]
        for r in results
    ]  # fmt: skip
    lines = [
        f"# {title}\n",
        "## Environment\n",
        _environment(),
        f"## {task.name} results ({inference_tag})\n",
        "Upstream parameters and GMACs are for a 10 s input (for a pruned model: its shrunk upstream); "
        + task.where.format(f"exp/<model>/{inference_tag}/<test set>")
        + ".\n",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
        *[f"![{Path(image).stem}]({image})\n" for image in images],
    ]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dirs", type=Path, nargs="+", required=True)
    parser.add_argument("--inference_tag", required=True)
    parser.add_argument("--test_sets", nargs="+", required=True)
    parser.add_argument("--title", default=f"RESULTS: {Path.cwd().parent.name}/{Path.cwd().name}")
    parser.add_argument("--out", type=Path, default=Path("RESULTS.md"))
    parser.add_argument("--plots_dir", type=Path, help="write the figures here (PNG) and show them in --out")
    parser.add_argument("--task", choices=sorted(TASKS), default="asr", help="which scores (default: asr)")
    args = parser.parse_args(argv)
    task = TASKS[args.task]
    try:
        results = [model_result(d, args.inference_tag, args.test_sets, task) for d in args.exp_dirs]
    except (OSError, ValueError, KeyError) as error:
        print(f"asr_results: {error}", file=sys.stderr)
        return 1
    images = []
    if args.plots_dir is not None:
        paths = write_plots(results, args.test_sets, args.plots_dir, task)
        images = [os.path.relpath(p, args.out.resolve().parent) for p in (p.resolve() for p in paths)]
    text = results_markdown(args.title, results, args.test_sets, args.inference_tag, images, task)
    with atomic_file(args.out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
