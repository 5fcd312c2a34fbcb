"""Write a recipe's RESULTS.md (ESPnet's style): environment, then one row per model.

    python -m espnet_prune.bin.asr_results --exp_dirs exp/asr_a exp/asr_b \\
        --inference_tag decode_decode_asr --test_sets test_clean --out RESULTS.md

Per model (the runs ``<model>_seed<N>`` of ``asr.sh --seeds`` are one model; its scores are the
mean and sample standard deviation over them, and each WER gets the p-value of NIST's MAPSSWE test
against the unpruned model, runs paired by seed): the pruning method and target, the expected sparsity the gates ended training with
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
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import yaml

from espnet_prune.asr.score import parse_sclite_summary
from espnet_prune.asr.significance import mapsswe
from espnet_prune.slu.significance import bootstrap_f1_difference, mcnemar, paired_items
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
Comparison = Union[float, tuple[float, float, float]]  # a p-value, or a difference (%) and its 95 % interval


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
    wer_dir: Callable[[Path], Path]  # decode dir -> the score dir of its WER (ref.trn, hyp.trn)
    score_dir: Callable[[Path], Path]  # decode dir -> its score dir (SLU: per_recording.jsonl)


TASKS = {
    "asr": Task(
        "ASR",
        ("WER",),
        asr_scores,
        "WER (%)",
        "wer_vs_gmacs",
        "WER from sclite's `result.txt` in `{}/score_wer/`",
        lambda decode_dir: decode_dir / "score_wer",
        lambda decode_dir: decode_dir / "score_wer",
    ),
    "slu": Task(
        "SLU",
        ("intent acc", "SLU-F1", "WER"),
        slu_scores,
        "intent accuracy (%)",
        "intent_acc_vs_gmacs",
        "intent accuracy, SLU-F1 and transcript WER from `{}/score_slu/` (SLURP's definitions)",
        lambda decode_dir: decode_dir / "score_slu" / "score_wer",
        lambda decode_dir: decode_dir / "score_slu",
    ),
}


@dataclass
class ModelResult:
    name: str  # the model directory's name
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
    decode_dirs: dict[str, Path] = field(default_factory=dict)  # test set -> its decode directory

    @property
    def model(self) -> str:
        """The name without the ``_seed<N>`` that ``asr.sh --seeds`` adds: runs of one model share it."""
        match = _SEED.match(self.name)
        return match["model"] if match else self.name

    @property
    def seed(self) -> Optional[int]:
        match = _SEED.match(self.name)
        return int(match["seed"]) if match else None


_SEED = re.compile(r"^(?P<model>.+)_seed(?P<seed>\d+)$")


@dataclass
class GroupResult:
    """One model over its seeds: means, sample standard deviations and the test against the baseline."""

    runs: list[ModelResult]
    comparisons: dict[tuple[str, str], Comparison]  # (test set, column) -> its test against the baseline

    @property
    def first(self) -> ModelResult:
        return self.runs[0]

    def mean(self, values: Sequence[Optional[float]]) -> Optional[float]:
        known = [v for v in values if v is not None]
        return statistics.fmean(known) if known else None

    def score(self, dset: str, column: str) -> tuple[Optional[float], Optional[float]]:
        """(mean, sd over seeds; None with one seed) of one score."""
        values = [r.scores[dset][column] for r in self.runs]
        known = [v for v in values if v is not None]
        return self.mean(known), (statistics.stdev(known) if len(known) > 1 else None)

    def sparsity(self, per_run: Callable[[ModelResult], Optional[dict[str, float]]]) -> Optional[dict[str, float]]:
        values = [per_run(r) for r in self.runs]
        if any(v is None for v in values):
            return None
        return {name: statistics.fmean(v[name] for v in values) for name in values[0]}


def _expected_sparsity(run: ModelResult) -> Optional[dict[str, float]]:
    budget = (run.summary or {}).get("budget")
    return budget["expected"] if budget else None


# per score column: the test against the unpruned model, its column header, and the file of each
# run's decode dir that it reads (relative to the task's score dir)
_TESTS = {
    "WER": ("p (MAPSSWE)", "hyp.trn"),
    "intent acc": ("p (McNemar)", "per_recording.jsonl"),
    "SLU-F1": ("Δ [95 % CI]", "per_recording.jsonl"),
}


_TEST_CAPTIONS = {
    "ASR": "p (MAPSSWE), NIST's matched-pairs sentence-segment word error test (sctk's `sc_stats -t mapsswe`)",
    "SLU": "p (McNemar), McNemar's exact test of intent accuracy; Δ [95 % CI], SLU-F1 minus the unpruned "
    "model's with its paired-bootstrap interval (1000 resamples of the recordings); p (MAPSSWE) of the "
    "transcript WER as for ASR",
}


def _compare(column: str, score_dirs: list[tuple[Path, Path]]) -> Comparison:
    """The test of ``column`` between the paired runs' score dirs (model, baseline)."""
    if column == "WER":
        return mapsswe(score_dirs).p
    items = paired_items([(a / "per_recording.jsonl", b / "per_recording.jsonl") for a, b in score_dirs])
    if column == "intent acc":
        return mcnemar(items)
    diff, low, high = bootstrap_f1_difference(items)
    return (100 * diff, 100 * low, 100 * high)


def _paired_tests(runs: Sequence[ModelResult], baseline: Sequence[ModelResult], test_sets: Sequence[str], task: Task) -> dict[tuple[str, str], Comparison]:
    """Each score column's test of ``runs`` against ``baseline``, runs paired by seed and pooled."""
    by_seed = {b.seed: b for b in baseline}
    paired = [(r, by_seed[r.seed]) for r in runs if r.seed in by_seed]
    comparisons: dict[tuple[str, str], Comparison] = {}
    for dset in test_sets:
        decoded = [(r.decode_dirs.get(dset), b.decode_dirs.get(dset)) for r, b in paired]
        if not paired or any(r is None or b is None for r, b in decoded):
            continue
        for column in task.columns:
            where = task.wer_dir if column == "WER" else task.score_dir
            dirs = [(where(r), where(b)) for r, b in decoded]
            if all((d / _TESTS[column][1]).is_file() for pair in dirs for d in pair):
                comparisons[(dset, column)] = _compare(column, dirs)
    return comparisons


def group_results(results: Sequence[ModelResult], test_sets: Sequence[str], task: Task) -> list[GroupResult]:
    """Runs of one model (``<model>_seed<N>`` directories) grouped, in order of first appearance.

    Each model is compared with the unpruned model (when exactly one model is unpruned), runs paired
    by seed and pooled over the seeds both have: WER by MAPSSWE
    (:func:`espnet_prune.asr.significance.mapsswe`), intent accuracy by McNemar's exact test and
    SLU-F1 by a paired bootstrap interval of the difference (:mod:`espnet_prune.slu.significance`).
    """
    groups: dict[str, list[ModelResult]] = {}
    for r in results:
        groups.setdefault(r.model, []).append(r)
    baselines = [runs for runs in groups.values() if runs[0].method == "unpruned"]
    return [
        GroupResult(runs, _paired_tests(runs, baselines[0], test_sets, task) if len(baselines) == 1 and runs is not baselines[0] else {})
        for runs in groups.values()
    ]


@dataclass
class TeacherEffect:
    """A model pruned with a teacher against the same method and target without one."""

    with_teacher: GroupResult
    without: GroupResult
    unpruned: Optional[GroupResult]
    comparisons: dict[tuple[str, str], Comparison]  # with vs without, paired by seed

    def gap_closed(self, dset: str, column: str) -> Optional[float]:
        """The share of the gap between the model without a teacher and the unpruned one that the
        teacher closes (1: all of it; negative: the teacher widened it)."""
        if self.unpruned is None:
            return None
        scores = [g.score(dset, column)[0] for g in (self.with_teacher, self.without, self.unpruned)]
        if any(v is None for v in scores) or scores[2] == scores[1]:
            return None
        return (scores[0] - scores[1]) / (scores[2] - scores[1])


# asr.sh's model name of "<method>:<target>+distill[<weight>]", with --distill_teacher "-<its stem>"
_DISTILL_SUFFIX = re.compile(r"_distill[0-9.]*(-[A-Za-z0-9.-]+)?$")


def distill_label(distill: Optional[dict]) -> str:
    """What a teacher adds to the method's name, so that each teacher setting makes its own curve:
    "" (none), "+distill" (weight 1, the upstream the model started from), "+distill0.1",
    "+distill20@unpruned-ft" (a ``teacher_ckpt`` of stem ``unpruned_ft``, as asr.sh names it)."""
    if distill is None:
        return ""
    weight = float(distill.get("weight", 1.0))
    label = "+distill" if weight == 1.0 else f"+distill{weight:g}"
    if distill.get("teacher_ckpt"):
        stem = Path(str(distill["teacher_ckpt"]).rstrip("/")).name
        label += "@" + re.sub(r"[^A-Za-z0-9.-]", "-", re.sub(r"\.[^.]*$", "", stem))
    return label


def teacher_effects(groups: Sequence[GroupResult], test_sets: Sequence[str], task: Task) -> list[TeacherEffect]:
    """Every ``<method>+distill[<weight>]`` group beside the group of the same config, method and target without it."""
    unpruned = [g for g in groups if g.first.method == "unpruned"]
    effects = []
    for g in groups:
        method, teacher, _ = g.first.method.partition("+distill")
        if not teacher:
            continue
        twin = _DISTILL_SUFFIX.sub("", g.first.model)
        # the config's own run (no --pruning_sweep) has no "_<method><target>" in its name
        own = re.sub(rf"_{re.escape(method)}[0-9.]+$", "", twin)
        same = [h for h in groups if h.first.method == method and h.first.target == g.first.target]
        plain = [h for h in same if h.first.model == twin] or [h for h in same if h.first.model == own]
        if len(plain) == 1:
            effects.append(TeacherEffect(g, plain[0], unpruned[0] if len(unpruned) == 1 else None,
                                         _paired_tests(g.runs, plain[0].runs, test_sets, task)))  # fmt: skip
    return effects


@dataclass
class Claim:
    """One of the paper's claims checked on these models: True (holds), False, or None (not measured)."""

    text: str
    holds: Optional[bool]
    evidence: list[str]  # one line per model or GMACs point that decided it


# MAC reductions the paper's claims speak of, widened by the budgets' tolerance (counted within 0.01)
_PAPER_TOLERANCE = 0.01
PAPER_METHODS = ("mac", "size", "trf_only")  # (c): HJ-Pruning-MAC <= HJ-Pruning-Size <= Transformer-only


def _interpolate(curve: Sequence[tuple[float, float]], x: float) -> Optional[float]:
    """The score at GMACs ``x`` on the piecewise-linear curve through ``(gmacs, score)`` points; None
    outside the measured range."""
    points = sorted(curve)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[0][1] if len(points) == 1 and points[0][0] == x else None


def paper_claims(groups: Sequence[GroupResult], dset: str, column: str = "WER") -> list[Claim]:
    """The paper's three claims on these models (means over seeds, an error rate: lower is better):
    (a) HJ-Pruning-MAC with 10-30 % fewer MACs is at least as accurate as the unpruned model;
    (b) with 40-50 % fewer MACs it is not significantly worse (p >= 0.05, or a lower mean);
    (c) at equal GMACs, HJ-Pruning-MAC <= HJ-Pruning-Size <= Transformer-only, compared at each
    HJ-Pruning-MAC model's GMACs on the other methods' curves (linear between their models).

    MAC reductions are the models' GMACs (10 s) against the unpruned model's; models pruned with a
    teacher are left out (the paper has none)."""
    unpruned = [g for g in groups if g.first.method == "unpruned"]
    claims_text = (
        "(a) 10-30 % fewer MACs: WER <= unpruned",
        "(b) 40-50 % fewer MACs: no significant degradation",
        "(c) at equal GMACs: HJ-Pruning-MAC <= HJ-Pruning-Size <= Transformer-only",
    )
    if len(unpruned) != 1 or unpruned[0].score(dset, column)[0] is None:
        return [Claim(text, None, ["no single unpruned model to compare with"]) for text in claims_text]
    base_wer = unpruned[0].score(dset, column)[0]
    base_gmacs = unpruned[0].mean([r.gmacs for r in unpruned[0].runs])

    def points(method: str) -> list[tuple[float, float, GroupResult]]:
        found = [(g.mean([r.gmacs for r in g.runs]), g.score(dset, column)[0], g) for g in groups if g.first.method == method]
        return sorted((x, y, g) for x, y, g in found if y is not None)

    def band_claim(text: str, low: float, high: float, ok: Callable[[float, Optional[Comparison]], bool]) -> Claim:
        evidence, verdicts = [], []
        for gmacs, wer, g in points("mac"):
            reduction = 1 - gmacs / base_gmacs
            if low - _PAPER_TOLERANCE <= reduction <= high + _PAPER_TOLERANCE:
                p = g.comparisons.get((dset, column))
                verdicts.append(ok(wer, p))
                evidence.append(f"{g.first.model}: {reduction:.1%} fewer MACs, {column} {wer:.2f} vs {base_wer:.2f} unpruned"
                                f" (p {_comparison(p)}, {len(g.runs)} seed{'s' if len(g.runs) > 1 else ''})")  # fmt: skip
        if not verdicts:
            return Claim(text, None, [f"no HJ-Pruning-MAC model with {low:.0%}-{high:.0%} fewer MACs"])
        return Claim(text, all(verdicts), evidence)

    claims = [
        band_claim(claims_text[0], 0.10, 0.30, lambda wer, p: wer <= base_wer),
        band_claim(claims_text[1], 0.40, 0.50, lambda wer, p: wer <= base_wer or (isinstance(p, float) and p >= 0.05)),
    ]
    curves = {m: [(x, y) for x, y, _ in points(m)] for m in PAPER_METHODS[1:]}
    evidence, verdicts = [], []
    for gmacs, wer, g in points("mac"):
        others = [_interpolate(curves[m], gmacs) for m in PAPER_METHODS[1:]]
        if None in others:
            continue
        order = [wer, *others]
        verdicts.append(order[0] <= order[1] <= order[2])
        evidence.append(f"at {gmacs:.2f} GMACs ({g.first.model}): " + ", ".join(f"{m} {v:.2f}" for m, v in zip(PAPER_METHODS, order)))
    if not verdicts:
        claims.append(Claim(claims_text[2], None, ["no HJ-Pruning-MAC model within both other methods' GMACs ranges"]))
    else:
        claims.append(Claim(claims_text[2], all(verdicts), evidence))
    return claims


def _claims_section(groups: Sequence[GroupResult], test_sets: Sequence[str], task: Task) -> list[str]:
    if task.name != "ASR" or not any(g.first.method in PAPER_METHODS for g in groups):
        return []
    lines = ["## Against the paper\n",
             "Peng et al. (ICASSP 2023) on these models, WER means over seeds; MAC reductions at 10 s against "
             "the unpruned model; (c) reads the other methods' WER at each HJ-Pruning-MAC model's GMACs, "
             "linearly between their models.\n"]  # fmt: skip
    verdict = {True: "holds", False: "does not hold", None: "not measured"}
    for dset in test_sets:
        for claim in paper_claims(groups, dset):
            lines.append(f"- {dset}, {claim.text}: **{verdict[claim.holds]}**")
            lines += [f"  - {line}" for line in claim.evidence]
    return [*lines, ""]


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
    frontend_conf = trained.get("frontend_conf") or {}
    pruning = frontend_conf.get("pruning_conf")
    # pruning_conf.distill: where configs written before December 2026 hold the teacher
    distill = frontend_conf.get("distill_conf") or (pruning or {}).get("distill")
    arch = read_checkpoint(used["frontend_conf"]["upstream_ckpt"]).arch
    cost = upstream_cost(arch, COST_SECONDS)
    counted = None
    if pruning and shrunk.is_file():
        seconds = float(pruning.get("macs_seconds", DEFAULT_MACS_SECONDS))
        dense = upstream_cost(read_checkpoint(trained["frontend_conf"]["upstream_ckpt"]).arch, seconds)
        counted = sparsities(upstream_cost(arch, seconds), dense, METHODS[pruning["method"]].constraints)
    scores: dict[str, Scores] = {}
    decodes = []
    decode_dirs = {}
    for dset in test_sets:
        decode_dir = decode_dirs[dset] = exp_dir / inference_tag / dset
        scores[dset] = task.read(decode_dir)
        if (decode_dir / "decode.json").is_file():
            decodes.append(json.loads((decode_dir / "decode.json").read_text()))

    def mean_of(key: str) -> Optional[float]:
        values = [d[key] for d in decodes if d.get(key) is not None]  # decode.json before upstream_rtf lacks it
        return sum(values) / len(values) if values else None

    return ModelResult(
        name=exp_dir.name,
        method=(pruning["method"] if pruning else "unpruned") + distill_label(distill),
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
        decode_dirs=decode_dirs,
    )


def decoded(results: Sequence[ModelResult]) -> list[ModelResult]:
    """The runs with a score on some test set. The others (still training or decoding, say in another
    lane of the sweep) are named on stderr and left out: in a row they would count as a seed."""
    scored = [r for r in results if any(v is not None for scores in r.scores.values() for v in scores.values())]
    for r in results:
        if all(r is not s for s in scored):
            print(f"asr_results: {r.name}: no scores yet; left out", file=sys.stderr)
    if not scored:
        raise ValueError("no model has scores yet")
    return scored


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
    groups: Sequence[GroupResult], test_sets: Sequence[str], plots_dir: Path, task: Task = TASKS["asr"]
) -> list[Path]:
    """The figures of :mod:`espnet_prune.plots` for these models (means over seeds); returns their paths.

    The layer figure of a model shows its first run (each seed prunes its own units).
    """
    paths = []
    column = task.columns[0]
    for dset in test_sets:
        path = plots_dir / f"{task.plot_name}_{dset}.png"
        points = [(g.first.method, g.mean([r.gmacs for r in g.runs]), g.score(dset, column)[0]) for g in groups]
        plot_tradeoff(points, path, ylabel=task.plot_label, title=dset)
        paths.append(path)
    for g in groups:
        if g.first.summary is not None:
            path = plots_dir / f"layers_{g.first.name}.png"
            plot_layers(g.first.summary, path, title=g.first.name)
            paths.append(path)
    return paths


def _comparison(value: Optional[Comparison]) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        diff, low, high = value
        return f"{diff:+.1f} [{low:+.1f}, {high:+.1f}]"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def results_markdown(
    title: str,
    groups: Sequence[GroupResult],
    test_sets: Sequence[str],
    inference_tag: str,
    images: Sequence[str] = (),
    task: Task = TASKS["asr"],
) -> str:
    """RESULTS.md: one row per model, its scores as mean and sd over its seeds, WER tested against
    the unpruned model's."""

    def num(value: Optional[float], fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    def sparsity(values: Optional[dict[str, float]]) -> str:
        return "-" if values is None else " / ".join(f"{v:.3f}" for v in values.values())

    columns = [(d, c) for d in test_sets for c in task.columns]
    header = ["model", "method", "target", "expected sparsity", "counted sparsity", "seeds"]
    for d, c in columns:
        header += [f"{c} {d}", "±", _TESTS[c][0]]
    header += ["params (M)", "GMACs (10 s)", "upstream RTF", "decode RTF", "train (min)"]
    rows = []
    for g in groups:
        r = g.first
        row = [g.first.model, r.method, num(r.target, ".2f"), sparsity(g.sparsity(_expected_sparsity)),
               sparsity(g.sparsity(lambda run: run.counted)), str(len(g.runs))]  # fmt: skip
        for d, c in columns:
            mean, sd = g.score(d, c)
            # one run is sclite's one-decimal figure; a mean of several gets a second decimal
            row += [num(mean, ".1f" if len(g.runs) == 1 else ".2f"), num(sd, ".2f")]
            row.append(_comparison(g.comparisons.get((d, c))))
        row += [num(g.mean([x.params_m for x in g.runs]), ".2f"), num(g.mean([x.gmacs for x in g.runs]), ".2f"),
                num(g.mean([x.upstream_rtf for x in g.runs]), ".4f"), num(g.mean([x.rtf for x in g.runs]), ".4f"),
                num(g.mean([x.train_minutes for x in g.runs]), ".1f")]  # fmt: skip
        rows.append(row)
    seeded = any(len(g.runs) > 1 for g in groups)
    lines = [
        f"# {title}\n",
        "## Environment\n",
        _environment(),
        f"## {task.name} results ({inference_tag})\n",
        "Upstream parameters and GMACs are for a 10 s input (for a pruned model: its shrunk upstream); "
        + task.where.format(f"exp/<model>/{inference_tag}/<test set>")
        + ". Scores are means over the model's seeds, ± their sample standard deviation"
        + ("" if seeded else " (- with one seed)")
        + ". Against the unpruned model, runs paired by seed and pooled over the seeds both have: "
        + _TEST_CAPTIONS[task.name]
        + ".\n",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
        *_claims_section(groups, test_sets, task),
        *_teacher_section(teacher_effects(groups, test_sets, task), test_sets, task),
        *[f"![{Path(image).stem}]({image})\n" for image in images],
    ]
    return "\n".join(lines)


def _teacher_section(effects: Sequence[TeacherEffect], test_sets: Sequence[str], task: Task) -> list[str]:
    if not effects:
        return []
    header = ["model", "target"]
    for d in test_sets:
        for c in task.columns:
            header += [f"{c} {d}: without", "with", "unpruned", "gap closed", _TESTS[c][0]]
    rows = []
    for e in effects:
        target = e.with_teacher.first.target
        row = [e.with_teacher.first.model, "-" if target is None else f"{target:.2f}"]
        for d in test_sets:
            for c in task.columns:
                means = [g.score(d, c)[0] if g is not None else None for g in (e.without, e.with_teacher, e.unpruned)]
                closed = e.gap_closed(d, c)
                row += ["-" if m is None else f"{m:.2f}" for m in means]
                row += ["-" if closed is None else f"{closed:.0%}", _comparison(e.comparisons.get((d, c)))]
        rows.append(row)
    return [
        "## With a teacher (layer-wise distillation)\n",
        "Each model trained with distillation from a teacher beside the same method and target "
        "without it (means over seeds; target - : unpruned, the control); gap closed = (with - without) / (unpruned - without); the test is "
        "with against without, runs paired by seed and pooled.\n",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
    ]


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
        scored = decoded(results)
        groups = group_results(scored, args.test_sets, task)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        print(f"asr_results: {error}", file=sys.stderr)
        return 1
    images = []
    if args.plots_dir is not None:
        paths = write_plots(groups, args.test_sets, args.plots_dir, task)
        images = [os.path.relpath(p, args.out.resolve().parent) for p in (p.resolve() for p in paths)]
    text = results_markdown(args.title, groups, args.test_sets, args.inference_tag, images, task)
    with atomic_file(args.out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
