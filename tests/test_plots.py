"""The figures: written atomically as PNG files, from the summaries and results the recipes produce."""

from __future__ import annotations

import dataclasses

import random
import statistics

import pytest

from espnet_prune.bin.asr_results import TASKS, ModelResult, group_results, results_markdown, write_plots
from espnet_prune.plots import plot_layers, plot_tradeoff
from espnet_prune.pruning.arch import UpstreamArch
from espnet_prune.pruning.objective import pruning_summary
from espnet_prune.pruning.presets import PRESETS

PNG = b"\x89PNG\r\n\x1a\n"


def _summary() -> dict:
    dense = UpstreamArch.from_model_cfg("wav2vec2", PRESETS["tiny"], None)
    pruned = dataclasses.replace(
        dense,
        conv_channels=(8, 16, *dense.conv_channels[2:]),
        heads=(2, 0),
        attention=(True, False),
        ffn_units=(100, dense.ffn_units[1]),
    )
    return pruning_summary(dense, pruned)


def test_layer_plot_is_a_png_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "plots" / "layers.png"
    plot_layers(_summary(), path, title="tiny")
    assert path.read_bytes().startswith(PNG)
    assert [p.name for p in path.parent.iterdir()] == ["layers.png"]


def test_tradeoff_plot_skips_missing_scores(tmp_path):
    path = tmp_path / "tradeoff.png"
    plot_tradeoff([("unpruned", 2.9, 10.0), ("mac", 1.5, 11.0), ("mac", 2.0, None), ("size", 1.8, 12.5)], path)
    assert path.read_bytes().startswith(PNG)


def test_results_show_the_plots(tmp_path):
    summary = {**_summary(), "budget": {"expected": {"macs": 0.4987}}}
    results = [
        ModelResult("asr_a", "unpruned", None, None, {"test": {"WER": 10.0}}, 1.4, 2.9, 0.1, 0.02, 3.0, None),
        ModelResult("asr_b", "mac", 0.5, {"macs": 0.5031}, {"test": {"WER": 11.0}}, 0.9, 1.5, 0.07, 0.011, 3.2, summary),
    ]
    groups = group_results(results, ["test"], TASKS["asr"])  # no decoded trn files: no p-value
    paths = write_plots(groups, ["test"], tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["layers_asr_b.png", "wer_vs_gmacs_test.png"]
    text = results_markdown("R", groups, ["test"], "decode_asr", ["plots/wer_vs_gmacs_test.png"])
    assert "| asr_b | mac | 0.50 | 0.499 | 0.503 | 1 | 11.0 | - | - | 0.90 | 1.50 | 0.0110 | 0.0700 | 3.2 |" in text
    assert "| asr_a | unpruned | - | - | - | 1 | 10.0 | - | - |" in text
    assert "![wer_vs_gmacs_test](plots/wer_vs_gmacs_test.png)" in text


def test_seeded_runs_are_one_row_with_mean_sd_and_mapsswe(tmp_path):
    """Three seeds of two models: mean ± sample sd, and the p-value of the pooled MAPSSWE test."""
    from espnet_prune.asr.score import score

    words = "the cat sat on a mat and dog ran far".split()
    rng = random.Random(0)
    refs = {f"spk{i % 3}-utt{i:02d}": [rng.choice(words) for _ in range(8)] for i in range(40)}
    ref_path = tmp_path / "text"
    ref_path.write_text("".join(f"{u} {' '.join(w)}\n" for u, w in refs.items()))
    results = []
    for name, method, rate in (("asr_a", "unpruned", 0.02), ("asr_b", "mac", 0.25)):
        for seed in range(3):
            decode_dir = tmp_path / f"{name}_seed{seed}" / "decode" / "test"
            hyp_path = tmp_path / f"hyp_{name}_{seed}"
            hyp_path.write_text("".join(f"{u} {' '.join(w if rng.random() >= rate else 'zzz' for w in ws)}\n" for u, ws in refs.items()))
            wer = float(score(ref_path, hyp_path, decode_dir / "score_wer", use_sclite=True).summary["wer"])
            target, counted = (0.5, {"macs": 0.50 + 0.002 * seed}) if method == "mac" else (None, None)
            results.append(ModelResult(f"{name}_seed{seed}", method, target, counted, {"test": {"WER": wer}},
                                       1.0, 1.0, None, None, None, None, {"test": decode_dir}))  # fmt: skip
    groups = group_results(results, ["test"], TASKS["asr"])
    assert [g.first.model for g in groups] == ["asr_a", "asr_b"] and [len(g.runs) for g in groups] == [3, 3]
    wers = [r.scores["test"]["WER"] for r in results[3:]]
    assert groups[1].score("test", "WER") == pytest.approx((statistics.fmean(wers), statistics.stdev(wers)))
    assert groups[1].comparisons[("test", "WER")] < 0.001 and groups[0].comparisons == {}
    text = results_markdown("R", groups, ["test"], "decode")
    mean, sd = groups[1].score("test", "WER")
    assert f"| asr_b | mac | 0.50 | - | 0.502 | 3 | {mean:.2f} | {sd:.2f} | <0.001 |" in text


def test_training_minutes_add_the_runs_a_resumed_training_logged(tmp_path):
    from espnet_prune.bin.asr_results import training_minutes

    assert training_minutes(tmp_path) is None
    epoch = "(trainer:394) INFO: {}epoch results: [train] loss=1.0, time={}, total_count=10, [valid] loss=1.0"
    # the first run finished epoch 1 and was killed; the resumed run did epoch 2; a re-run had nothing to do
    (tmp_path / "train.1.log").write_text(epoch.format(1, "1 minute and 30.5 seconds") + "\n")
    (tmp_path / "train.2.log").write_text(epoch.format(2, "1 hour, 2 minutes and 0 seconds") + "\n")
    (tmp_path / "train.log").write_text("(trainer) INFO: The training was finished at 2 epochs\n")
    assert abs(training_minutes(tmp_path) - (1.5 + 0.5 / 60 + 62)) < 1e-9
