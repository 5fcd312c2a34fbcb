"""The figures: written atomically as PNG files, from the summaries and results the recipes produce."""

from __future__ import annotations

import dataclasses

import random
import statistics

import pytest

from espnet_prune.bin.asr_results import TASKS, ModelResult, group_results, results_markdown, teacher_effects, write_plots
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


def _seeded_results(tmp_path, models, seeds=3) -> list[ModelResult]:
    """(name, method, word error rate) models x seeds, each run's hypotheses scored by sclite."""
    from espnet_prune.asr.score import score

    words = "the cat sat on a mat and dog ran far".split()
    rng = random.Random(0)
    refs = {f"spk{i % 3}-utt{i:02d}": [rng.choice(words) for _ in range(8)] for i in range(40)}
    ref_path = tmp_path / "text"
    ref_path.write_text("".join(f"{u} {' '.join(w)}\n" for u, w in refs.items()))
    results = []
    for name, method, rate in models:
        for seed in range(seeds):
            decode_dir = tmp_path / f"{name}_seed{seed}" / "decode" / "test"
            hyp_path = tmp_path / f"hyp_{name}_{seed}"
            hyp_path.write_text("".join(f"{u} {' '.join(w if rng.random() >= rate else 'zzz' for w in ws)}\n" for u, ws in refs.items()))
            wer = float(score(ref_path, hyp_path, decode_dir / "score_wer", use_sclite=True).summary["wer"])
            target, counted = (0.5, {"macs": 0.50 + 0.002 * seed}) if not method.startswith("unpruned") else (None, None)
            results.append(ModelResult(f"{name}_seed{seed}", method, target, counted, {"test": {"WER": wer}},
                                       1.0, 1.0, None, None, None, None, {"test": decode_dir}))  # fmt: skip
    return results


def test_seeded_runs_are_one_row_with_mean_sd_and_mapsswe(tmp_path):
    """Three seeds of two models: mean ± sample sd, and the p-value of the pooled MAPSSWE test."""
    results = _seeded_results(tmp_path, (("asr_a", "unpruned", 0.02), ("asr_b", "mac", 0.25)))
    groups = group_results(results, ["test"], TASKS["asr"])
    assert [g.first.model for g in groups] == ["asr_a", "asr_b"] and [len(g.runs) for g in groups] == [3, 3]
    wers = [r.scores["test"]["WER"] for r in results[3:]]
    assert groups[1].score("test", "WER") == pytest.approx((statistics.fmean(wers), statistics.stdev(wers)))
    assert groups[1].comparisons[("test", "WER")] < 0.001 and groups[0].comparisons == {}
    text = results_markdown("R", groups, ["test"], "decode")
    mean, sd = groups[1].score("test", "WER")
    assert f"| asr_b | mac | 0.50 | - | 0.502 | 3 | {mean:.2f} | {sd:.2f} | <0.001 |" in text
    assert "With a teacher" not in text


def test_teacher_section_pairs_each_distilled_model_with_its_plain_twin(tmp_path):
    models = (("asr_u", "unpruned", 0.02), ("asr_p_mac0.7", "mac", 0.30), ("asr_p_mac0.7_distill", "mac+distill", 0.12))
    groups = group_results(_seeded_results(tmp_path, models, seeds=2), ["test"], TASKS["asr"])
    (effect,) = teacher_effects(groups, ["test"], TASKS["asr"])
    assert (effect.with_teacher.first.model, effect.without.first.model, effect.unpruned.first.model) == (
        "asr_p_mac0.7_distill", "asr_p_mac0.7", "asr_u")
    with_t, without, unpruned = (effect.with_teacher.score("test", "WER")[0], effect.without.score("test", "WER")[0],
                                 groups[0].score("test", "WER")[0])  # fmt: skip
    assert effect.gap_closed("test", "WER") == pytest.approx((with_t - without) / (unpruned - without))
    assert 0 < effect.gap_closed("test", "WER") < 1 and effect.comparisons[("test", "WER")] < 0.05
    text = results_markdown("R", groups, ["test"], "decode")
    assert f"| asr_p_mac0.7_distill | 0.50 | {without:.2f} | {with_t:.2f} | {unpruned:.2f} | {effect.gap_closed('test', 'WER'):.0%} |" in text


def test_each_teacher_weight_is_its_own_model_paired_with_the_plain_twin(tmp_path):
    from espnet_prune.bin.asr_results import distill_label

    assert [distill_label(d) for d in (None, {}, {"weight": 1.0}, {"weight": 0.1, "loss": "l1"},
                                       {"weight": 20, "teacher_ckpt": "exp/teacher_unpruned_ft.pt"})] == [
        "", "+distill", "+distill", "+distill0.1", "+distill20@teacher-unpruned-ft"]  # fmt: skip
    # asr.sh --distill_teacher exp/teacher_unpruned_ft.pt names its models ..._distill20-teacher-unpruned-ft
    models = (("asr_p_mac0.7_distill", "mac+distill", 0.12), ("asr_u", "unpruned", 0.02), ("asr_p_mac0.7", "mac", 0.30),
              ("asr_p_mac0.7_distill0.1", "mac+distill0.1", 0.20),
              ("asr_p_mac0.7_distill20-teacher-unpruned-ft", "mac+distill20@teacher-unpruned-ft", 0.10))  # fmt: skip
    groups = group_results(_seeded_results(tmp_path, models, seeds=2), ["test"], TASKS["asr"])
    effects = teacher_effects(groups, ["test"], TASKS["asr"])
    assert [(e.with_teacher.first.model, e.without.first.model) for e in effects] == [
        ("asr_p_mac0.7_distill", "asr_p_mac0.7"), ("asr_p_mac0.7_distill0.1", "asr_p_mac0.7"),
        ("asr_p_mac0.7_distill20-teacher-unpruned-ft", "asr_p_mac0.7")]  # fmt: skip


def test_the_unpruned_model_with_the_teacher_is_the_control(tmp_path):
    # ./run.sh --asr_configs conf/u.yaml --pruning_sweep +distill20 --distill_teacher exp/t.pt: asr_u_distill20-t
    models = (("asr_u", "unpruned", 0.10), ("asr_u_distill20-t", "unpruned+distill20@t", 0.04),
              ("asr_u_mac0.5", "mac", 0.30), ("asr_u_mac0.5_distill20-t", "mac+distill20@t", 0.12))  # fmt: skip
    groups = group_results(_seeded_results(tmp_path, models, seeds=2), ["test"], TASKS["asr"])
    effects = teacher_effects(groups, ["test"], TASKS["asr"])
    assert [(e.with_teacher.first.model, e.without.first.model) for e in effects] == [
        ("asr_u_distill20-t", "asr_u"), ("asr_u_mac0.5_distill20-t", "asr_u_mac0.5")]  # fmt: skip
    assert effects[0].gap_closed("test", "WER") is None and effects[0].comparisons[("test", "WER")] < 0.05
    assert groups[1].comparisons[("test", "WER")] < 0.05  # the control against the unpruned model, as every model
    text = results_markdown("R", groups, ["test"], "decode")
    with_t, without = effects[0].with_teacher.score("test", "WER")[0], effects[0].without.score("test", "WER")[0]
    assert f"| asr_u_distill20-t | - | {without:.2f} | {with_t:.2f} | {without:.2f} | - |" in text


def test_a_sweep_teacher_pairs_with_the_configs_own_run_of_that_target(tmp_path):
    # ./run.sh --asr_configs conf/x_mac0.5.yaml (model asr_x_mac0.5) beside --pruning_sweep mac:0.5+distill20
    # (model asr_x_mac0.5_mac0.5_distill20-teacher-t): the plain twin has no sweep suffix
    models = (("asr_u", "unpruned", 0.02), ("asr_x_mac0.5", "mac", 0.30),
              ("asr_x_mac0.5_mac0.5_distill20-teacher-t", "mac+distill20@teacher-t", 0.12))  # fmt: skip
    groups = group_results(_seeded_results(tmp_path, models, seeds=2), ["test"], TASKS["asr"])
    (effect,) = teacher_effects(groups, ["test"], TASKS["asr"])
    assert (effect.with_teacher.first.model, effect.without.first.model) == ("asr_x_mac0.5_mac0.5_distill20-teacher-t", "asr_x_mac0.5")
    # with both names present (a sweep run of the config's own target), the sweep's twin is the one
    models += (("asr_x_mac0.5_mac0.5", "mac", 0.25),)
    (tmp_path / "both").mkdir()
    groups = group_results(_seeded_results(tmp_path / "both", models, seeds=2), ["test"], TASKS["asr"])
    (effect,) = teacher_effects(groups, ["test"], TASKS["asr"])
    assert effect.without.first.model == "asr_x_mac0.5_mac0.5"


def test_against_the_paper_checks_each_claim_on_the_models_it_speaks_of(tmp_path):
    from espnet_prune.bin.asr_results import paper_claims

    gmacs = {"asr_u": 1.0, "asr_mac0.2": 0.8, "asr_mac0.45": 0.55, "asr_size_hi": 0.9, "asr_size_lo": 0.5,
             "asr_trf_hi": 0.95, "asr_trf_lo": 0.5}  # fmt: skip
    models = (("asr_u", "unpruned", 0.05), ("asr_mac0.2", "mac", 0.02), ("asr_mac0.45", "mac", 0.40),
              ("asr_size_hi", "size", 0.10), ("asr_size_lo", "size", 0.30), ("asr_trf_hi", "trf_only", 0.05),
              ("asr_trf_lo", "trf_only", 0.50))  # fmt: skip
    results = [dataclasses.replace(r, gmacs=gmacs[r.model]) for r in _seeded_results(tmp_path, models, seeds=2)]
    groups = group_results(results, ["test"], TASKS["asr"])
    wer = {g.first.model: g.score("test", "WER")[0] for g in groups}
    a, b, c = paper_claims(groups, "test")
    assert a.holds is (wer["asr_mac0.2"] <= wer["asr_u"]) and "asr_mac0.2: 20.0% fewer MACs" in a.evidence[0]
    assert len(a.evidence) == 1 and b.holds is False and len(b.evidence) == 1 and "asr_mac0.45" in b.evidence[0]
    # (c) at 0.80 GMACs: size between 0.9 and 0.5, Transformer-only between 0.95 and 0.5; at 0.55 likewise
    size_at = lambda x: wer["asr_size_lo"] + (wer["asr_size_hi"] - wer["asr_size_lo"]) * (x - 0.5) / 0.4  # noqa: E731
    trf_at = lambda x: wer["asr_trf_lo"] + (wer["asr_trf_hi"] - wer["asr_trf_lo"]) * (x - 0.5) / 0.45  # noqa: E731
    orders = [wer[m] <= size_at(x) <= trf_at(x) for m, x in (("asr_mac0.45", 0.55), ("asr_mac0.2", 0.8))]
    assert c.holds is all(orders) and len(c.evidence) == 2
    assert f"mac {wer['asr_mac0.2']:.2f}, size {size_at(0.8):.2f}, trf_only {trf_at(0.8):.2f}" in c.evidence[1]
    text = results_markdown("R", groups, ["test"], "decode")
    assert "## Against the paper" in text and "(b) 40-50 % fewer MACs: no significant degradation: **does not hold**" in text
    # without the other methods, or without a model in a claim's band: not measured
    only_mac = [g for g in groups if g.first.model in ("asr_u", "asr_mac0.45")]
    a, b, c = paper_claims(only_mac, "test")
    assert (a.holds, b.holds, c.holds) == (None, False, None)


def test_training_minutes_add_the_runs_a_resumed_training_logged(tmp_path):
    from espnet_prune.bin.asr_results import training_minutes

    assert training_minutes(tmp_path) is None
    epoch = "(trainer:394) INFO: {}epoch results: [train] loss=1.0, time={}, total_count=10, [valid] loss=1.0"
    # the first run finished epoch 1 and was killed; the resumed run did epoch 2; a re-run had nothing to do
    (tmp_path / "train.1.log").write_text(epoch.format(1, "1 minute and 30.5 seconds") + "\n")
    (tmp_path / "train.2.log").write_text(epoch.format(2, "1 hour, 2 minutes and 0 seconds") + "\n")
    (tmp_path / "train.log").write_text("(trainer) INFO: The training was finished at 2 epochs\n")
    assert abs(training_minutes(tmp_path) - (1.5 + 0.5 / 60 + 62)) < 1e-9


def test_a_run_without_scores_yet_is_left_out_not_counted_as_a_seed(tmp_path, capsys):
    """RESULTS made while another lane still trains seed 1: the row is seed 0's, named as one seed."""
    from espnet_prune.bin.asr_results import decoded

    results = _seeded_results(tmp_path, (("asr_a", "unpruned", 0.02), ("asr_b", "mac", 0.25)), seeds=2)
    training = dataclasses.replace(results[3], scores={"test": {"WER": None}})
    kept = decoded([*results[:3], training])
    assert [r.name for r in kept] == ["asr_a_seed0", "asr_a_seed1", "asr_b_seed0"]
    assert "asr_b_seed1: no scores yet; left out" in capsys.readouterr().err
    groups = group_results(kept, ["test"], TASKS["asr"])
    assert [len(g.runs) for g in groups] == [2, 1]
    with pytest.raises(ValueError, match="no model has scores yet"):
        decoded([training])
