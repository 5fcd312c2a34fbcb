"""egs2/synth_slurp/slu1 end to end in its reduced mode (`./run.sh --ci true`, a few minutes).

Every stage of the SLU route runs for real on a synthetic SLURP: data (prep_slurp), word and intent
lists, the stand-in pretraining on the transcripts, stats, training (intent head + slurp_entity
decoder, unpruned and HJ-Pruning-MAC), shrink, decoding, SLURP's metrics and RESULTS. The models
train for a few steps only, so the checks are on the plumbing and on what must hold at any accuracy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("data", "data_*", "exp", "exp_*", "downloads", "RESULTS_ci.md", "RESULTS_ci_plots")
MODELS = ("slu_train_slu_unpruned", "slu_train_slu_mac0.5")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[Path, str]:
    """A copy of the recipe (outside the repository) after `./run.sh --ci true`, and its log."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (tools/install.sh installs it)")
    root = tmp_path_factory.mktemp("egs2")
    for name in ("TEMPLATE", "synth_librispeech", "synth_slurp"):  # the stand-in's config is shared
        shutil.copytree(REPO / "egs2" / name, root / name, symlinks=True, ignore=shutil.ignore_patterns(*OUTPUTS))
    recipe = root / "synth_slurp" / "slu1"
    env = {**os.environ, "MAIN_ROOT": str(REPO)}
    done = subprocess.run(["./run.sh", "--ci", "true"], cwd=recipe, env=env, capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return recipe, done.stdout + done.stderr


def test_every_stage_runs(recipe):
    _, log = recipe
    for n in (1, 2, 3, 4, 6, 7, 8, 9, 10):  # stage 5, the language model, only with --lm_config
        assert re.search(rf"Stage {n} done in \d+ s", log), f"stage {n}"
    assert "Stage 5" not in log
    assert "Successfully finished" in log


def test_stand_in_learns_the_transcripts_and_the_models_the_tagged_targets(recipe):
    data = recipe[0] / "data_ci"
    chars = (data / "token_list" / "char" / "tokens.txt").read_text().split()
    assert "_" not in chars  # intent names (scenario_action) are not in the transcripts
    words = (data / "token_list" / "word" / "tokens.txt").read_text().split()
    assert {"SEP", "FILL"} <= set(words)
    pretrain = yaml.safe_load((recipe[0] / "exp_ci" / "pretrain" / "config.yaml").read_text())
    assert any(path.endswith("/transcript") for path, _, _ in pretrain["train_data_path_and_name_and_type"])


def test_decoding_writes_head_intents_and_scores_reach_results(recipe):
    recipe_dir = recipe[0]
    test = recipe_dir / "data_ci" / "test"
    utts = sorted(line.split()[0] for line in (test / "wav.scp").read_text().splitlines())
    known = set((recipe_dir / "data_ci" / "token_list" / "intents.txt").read_text().split())
    results = (recipe_dir / "RESULTS_ci.md").read_text()
    for model in MODELS:
        decoded = recipe_dir / "exp_ci" / model / "decode_slu_ci" / "test"
        intents = dict(line.split() for line in (decoded / "intent").read_text().splitlines())
        assert sorted(intents) == utts and set(intents.values()) <= known
        metrics = json.loads((decoded / "score_slu" / "metrics.json").read_text())
        assert metrics["n_scored"] == metrics["n_gold"] > 0
        row = next(line for line in results.splitlines() if line.startswith(f"| {model} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        # model, method, target, expected and counted sparsity, seeds, then intent acc ± p, SLU-F1 ± Δ
        assert cells[6:8] == [f"{100 * metrics['intent_accuracy']:.1f}", "-"], row
        assert cells[9:11] == [f"{100 * metrics['slu_f1']['overall']['f1']:.1f}", "-"], row
        if model == MODELS[1]:  # the pruned model, tested against the unpruned one
            assert re.fullmatch(r"<0\.001|[01]\.\d{3}", cells[8]), row
            assert re.fullmatch(r"[+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\]", cells[11]), row
    assert "| slu_train_slu_mac0.5 | mac | 0.50 |" in results
    assert (recipe_dir / "exp_ci" / MODELS[1] / "shrunk" / "upstream.safetensors").is_file()
    assert (recipe_dir / "RESULTS_ci_plots" / "intent_acc_vs_gmacs_test.png").is_file()


def test_self_supervised_stand_in_route(recipe):
    """`--standin ssl`: stage 3 pretrains the ASR recipe's HuBERT stand-in on the synthetic
    LibriSpeech's unlabelled audio (local/pretrain_hubert.sh, shared), and the SLU models fine-tune it
    with their own configs. (A few steps each: the plumbing, not the accuracy.)"""
    recipe_dir = recipe[0]
    env = {**os.environ, "MAIN_ROOT": str(REPO)}
    done = subprocess.run(
        ["./run.sh", "--ci", "true", "--standin", "ssl", "--stage", "3", "--stop_stage", "6",
         "--asr_configs", "conf/train_slu_mac0.5_ssl.yaml", "--pretrain_args", "--max_epoch 1 --num_iters_per_epoch 2",
         "--train_args", "--max_epoch 1 --num_iters_per_epoch 3"],
        cwd=recipe_dir, env=env, capture_output=True, text=True,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "Stage 3: stand-in upstream: local/pretrain_hubert.sh -> exp_ci_ssl/pretrain/upstream.pt" in log
    audio = recipe_dir / "exp_ci_ssl" / "pretrain" / "data" / "train_ssl"
    assert sorted(p.name for p in audio.iterdir()) == ["labels", "wav.scp"]  # audio only, and not SLURP's
    ssl_audio = dict(line.split(maxsplit=1) for line in (audio / "wav.scp").read_text().splitlines())
    slurp_audio = dict(line.split(maxsplit=1) for line in (recipe_dir / "data_ci" / "train" / "wav.scp").read_text().splitlines())
    assert all("/LibriSpeech/train-clean-" in path for path in ssl_audio.values())
    assert not set(ssl_audio) & set(slurp_audio) and not set(ssl_audio.values()) & set(slurp_audio.values())
    model = recipe_dir / "exp_ci_ssl" / "slu_train_slu_mac0.5_ssl"
    config = yaml.safe_load((model / "config.yaml").read_text())
    assert config["frontend_conf"]["upstream_ckpt"] == "exp_ci_ssl/pretrain/upstream.pt"
    assert config["frontend_conf"]["pruning_conf"]["gate_conf"] == {"attention": False, "ffn": False}
    assert config["model"] == "espnet_prune_slu" and (model / "valid.acc.ave.pth").exists()
