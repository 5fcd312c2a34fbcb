"""The figures: written atomically as PNG files, from the summaries and results the recipes produce."""

from __future__ import annotations

import dataclasses

from espnet_prune.bin.asr_results import ModelResult, results_markdown, write_plots
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
    paths = write_plots(results, ["test"], tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["layers_asr_b.png", "wer_vs_gmacs_test.png"]
    text = results_markdown("R", results, ["test"], "decode_asr", ["plots/wer_vs_gmacs_test.png"])
    assert "| asr_b | mac | 0.50 | 0.499 | 0.503 | 11.0 | 0.90 | 1.50 | 0.0110 | 0.0700 | 3.2 |" in text
    assert "| asr_a | unpruned | - | - | - | 10.0 |" in text
    assert "![wer_vs_gmacs_test](plots/wer_vs_gmacs_test.png)" in text


def test_training_minutes_add_the_runs_a_resumed_training_logged(tmp_path):
    from espnet_prune.bin.asr_results import training_minutes

    assert training_minutes(tmp_path) is None
    epoch = "(trainer:394) INFO: {}epoch results: [train] loss=1.0, time={}, total_count=10, [valid] loss=1.0"
    # the first run finished epoch 1 and was killed; the resumed run did epoch 2; a re-run had nothing to do
    (tmp_path / "train.1.log").write_text(epoch.format(1, "1 minute and 30.5 seconds") + "\n")
    (tmp_path / "train.2.log").write_text(epoch.format(2, "1 hour, 2 minutes and 0 seconds") + "\n")
    (tmp_path / "train.log").write_text("(trainer) INFO: The training was finished at 2 epochs\n")
    assert abs(training_minutes(tmp_path) - (1.5 + 0.5 / 60 + 62)) < 1e-9
