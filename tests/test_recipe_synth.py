"""egs2/synth_librispeech/asr1 end to end in its reduced mode (`./run.sh --ci true`, a few minutes).

Every stage runs for real on a synthetic corpus: data, tokens, the stand-in pretraining, stats,
training (unpruned and HJ-Pruning-MAC), shrink, decoding, scoring and RESULTS. The models train
for a few steps only, so the checks are on the plumbing and on what must hold at any accuracy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from espnet_prune.asr.score import parse_sclite_summary
from espnet_prune.pruning.checkpoint import read_checkpoint
from espnet_prune.pruning.cost import upstream_cost

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("data", "data_*", "exp", "exp_*", "downloads", "RESULTS_ci.md")  # a local run's outputs stay behind
DECODED = "decode_asr_ci_lm_train_lm_char"  # the decode config, then the language model


def _run(recipe: Path, *args: str) -> str:
    env = {**os.environ, "MAIN_ROOT": str(REPO)}
    done = subprocess.run(["./run.sh", *args], cwd=recipe, env=env, capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[Path, str]:
    """A copy of the recipe (outside the repository) after `./run.sh --ci true`, and its log."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (tools/install.sh installs it)")
    root = tmp_path_factory.mktemp("egs2")
    for name in ("TEMPLATE", "synth_librispeech"):
        shutil.copytree(REPO / "egs2" / name, root / name, symlinks=True, ignore=shutil.ignore_patterns(*OUTPUTS))
    recipe = root / "synth_librispeech" / "asr1"
    return recipe, _run(recipe, "--ci", "true", "--train_jobs", "2")  # the two models in two lanes


def test_every_stage_runs(recipe):
    _, log = recipe
    for n in range(1, 11):
        assert re.search(rf"Stage {n} done in \d+ s", log), f"stage {n}"
    for model in ("asr_train_asr_unpruned", "asr_train_asr_mac0.5"):  # each in its lane
        assert re.search(rf"Stage 6: exp_ci/{re.escape(model)} trained in \d+ s", log), model
    assert "Successfully finished" in log
    # no network attempt or notice from ESPnet's imports (g2p_en's NLTK download, flash-attn)
    assert "nltk_data" not in log and "Flash Attention" not in log


def test_stand_in_upstream_is_an_s3prl_checkpoint(recipe):
    path = recipe[0] / "exp_ci" / "pretrain" / "upstream.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert set(ckpt) >= {"task_cfg", "model_cfg", "model_weight"}
    init = torch.load(path.parent / "init.pt", map_location="cpu", weights_only=True)
    assert ckpt["model_weight"].keys() == init["model_weight"].keys()  # heads kept: S3PRL loads it strictly
    changed = [k for k in init["model_weight"] if not torch.equal(init["model_weight"][k], ckpt["model_weight"][k])]
    assert any(k.startswith("feature_extractor.") for k in changed) and any(k.startswith("encoder.") for k in changed)


def test_pruned_model_is_shrunk_and_decodes(recipe):
    exp = recipe[0] / "exp_ci"
    dense = read_checkpoint(exp / "pretrain" / "upstream.pt").arch
    shrunk_conf = yaml.safe_load((exp / "asr_train_asr_mac0.5" / "shrunk" / "config.yaml").read_text())
    assert shrunk_conf["frontend_conf"]["pruning_conf"] is None
    shrunk = read_checkpoint(recipe[0] / shrunk_conf["frontend_conf"]["upstream_ckpt"]).arch  # relative to the recipe
    assert shrunk.pruned_dict() is not None
    # ten training steps close few gates, but the shrunk upstream is never larger than the dense one
    assert upstream_cost(shrunk, 10.0).params <= upstream_cost(dense, 10.0).params
    decoded = exp / "asr_train_asr_mac0.5" / DECODED / "test_clean"
    n_test = len((recipe[0] / "data_ci" / "test_clean" / "wav.scp").read_text().splitlines())
    assert len((decoded / "text").read_text().splitlines()) == n_test
    # the language model of stage 5 joined the beam search
    decode_config = json.loads((decoded / "decode.json").read_text())["decode_config"]
    assert decode_config["lm_file"] == "exp_ci/lm_train_lm_char/valid.loss.ave.pth"


def test_scores_and_results(recipe):
    recipe_dir = recipe[0]
    results = (recipe_dir / "RESULTS_ci.md").read_text()
    for model in ("asr_train_asr_unpruned", "asr_train_asr_mac0.5"):
        report = recipe_dir / "exp_ci" / model / DECODED / "test_clean" / "score_wer" / "result.txt"
        summary = parse_sclite_summary(report.read_text())
        assert summary["n_sent"] == len((recipe_dir / "data_ci" / "test_clean" / "text").read_text().splitlines())
        row = next(line for line in results.splitlines() if line.startswith(f"| {model} |"))
        assert f"| {summary['wer']:.1f} |" in row
    assert "| asr_train_asr_mac0.5 | mac | 0.50 |" in results


def test_stages_rerun_without_redoing_work(recipe):
    recipe_dir = recipe[0]
    shrunk = recipe_dir / "exp_ci" / "asr_train_asr_mac0.5" / "shrunk" / "upstream.safetensors"
    before = shrunk.read_bytes()
    assert "exists; skipped" in _run(recipe_dir, "--ci", "true", "--stage", "4", "--stop_stage", "4")
    _run(recipe_dir, "--ci", "true", "--stage", "7", "--stop_stage", "7")
    assert shrunk.read_bytes() == before  # shrinking the same model again writes the same bytes


def test_unknown_option_is_an_error(recipe):
    env = {**os.environ, "MAIN_ROOT": str(REPO)}
    done = subprocess.run(["./run.sh", "--ci", "true", "--stgae", "3"], cwd=recipe[0], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown option --stgae" in done.stderr


def test_seeds_train_each_model_per_seed(recipe):
    """`--seeds 1` trains the model with ESPnet's --seed 1 in <model>_seed1 (grouping such runs into
    mean ± sd with MAPSSWE p-values is test_plots' and test_significance's, on real sclite output)."""
    recipe_dir = recipe[0]
    log = _run(recipe_dir, "--ci", "true", "--seeds", "1", "--stage", "6", "--stop_stage", "6",
               "--asr_configs", "conf/train_asr_mac0.5.yaml")  # fmt: skip
    config = yaml.safe_load((recipe_dir / "exp_ci" / "asr_train_asr_mac0.5_seed1" / "config.yaml").read_text())
    assert config["seed"] == 1, log
    assert not (recipe_dir / "exp_ci" / "asr_train_asr_unpruned_seed1").exists()
    done = subprocess.run(["./run.sh", "--ci", "true", "--seeds", "0 x"], cwd=recipe_dir, env={**os.environ, "MAIN_ROOT": str(REPO)},
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "--seeds takes non-negative integers, not 'x'" in done.stdout + done.stderr
    done = subprocess.run(["./run.sh", "--ci", "true", "--train_jobs", "0"], cwd=recipe_dir, env={**os.environ, "MAIN_ROOT": str(REPO)},
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "--train_jobs takes a positive integer, not '0'" in done.stdout + done.stderr
    done = subprocess.run(["./run.sh", "--ci", "true", "--pruning_sweep", "mac:0.5+teacher"], cwd=recipe_dir,
                          env={**os.environ, "MAIN_ROOT": str(REPO)}, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "expected <method>:<target>, <method>:<target>+distill<weight> or +distill<weight>" in done.stdout + done.stderr
    done = subprocess.run(["./run.sh", "--ci", "true", "--pruning_sweep", "mac:0.5+distill0.1x"], cwd=recipe_dir,
                          env={**os.environ, "MAIN_ROOT": str(REPO)}, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "the distillation weight '0.1x' is not a number" in done.stdout + done.stderr


def test_distill_teacher_is_the_fine_tuned_unpruned_model(recipe):
    """`--distill_teacher CKPT`: the sweep's +distill points distil from CKPT (here the unpruned model
    fine-tuned and exported), in a model named after it; plain points and unpruned configs stay as they
    were, except for a bare "+distill<weight>" point: the control, the unpruned model with the teacher."""
    recipe_dir = recipe[0]
    unpruned = recipe_dir / "exp_ci" / "asr_train_asr_unpruned"
    env = {**os.environ, "MAIN_ROOT": str(REPO)}
    subprocess.run([sys.executable, "-m", "espnet_prune.bin.export_upstream", "--config", str(unpruned / "config.yaml"),
                    "--model_file", str(unpruned / "valid.acc.ave.pth"), "--out", "exp_ci/teacher_unpruned_ft.pt"],
                   cwd=recipe_dir, check=True, env=env)  # the config's paths are the recipe's  # fmt: skip
    log = _run(recipe_dir, "--ci", "true", "--stage", "6", "--stop_stage", "8", "--asr_configs", "conf/train_asr_mac0.5.yaml",
               "--pruning_sweep", "mac:0.5+distill20", "--distill_teacher", "exp_ci/teacher_unpruned_ft.pt",
               "--train_args", "--max_epoch 1 --num_iters_per_epoch 2")  # fmt: skip
    exp = recipe_dir / "exp_ci"
    pruning = yaml.safe_load((exp / "asr_train_asr_mac0.5_mac0.5_distill20-teacher-unpruned-ft" / "config.yaml").read_text())
    teacher = "exp_ci/teacher_unpruned_ft.pt"
    assert pruning["frontend_conf"]["distill_conf"] == {"weight": 20, "teacher_ckpt": teacher}, log
    assert pruning["frontend_conf"]["pruning_conf"]["target"] == 0.5
    distilled = exp / "asr_train_asr_mac0.5_mac0.5_distill20-teacher-unpruned-ft"
    assert "distill_conf" not in yaml.safe_load((distilled / "shrunk" / "config.yaml").read_text())["frontend_conf"]
    assert sorted(distilled.glob("decode_*/test_clean/*")), log  # the shrunk model, without its teacher
    assert "distill_conf" not in yaml.safe_load((exp / "asr_train_asr_mac0.5" / "config.yaml").read_text())["frontend_conf"]
    log = _run(recipe_dir, "--ci", "true", "--stage", "6", "--stop_stage", "8", "--asr_configs", "conf/train_asr_unpruned.yaml",
               "--pruning_sweep", "+distill20", "--distill_teacher", teacher, "--train_args", "--max_epoch 1 --num_iters_per_epoch 2")  # fmt: skip
    control = exp / "asr_train_asr_unpruned_distill20-teacher-unpruned-ft"
    conf = yaml.safe_load((control / "config.yaml").read_text())["frontend_conf"]
    assert conf.get("pruning_conf") is None and conf["distill_conf"] == {"weight": 20, "teacher_ckpt": teacher}, log
    assert "Stage 7: " + str(control.relative_to(recipe_dir)) + " is not pruned" in log
    assert sorted(control.glob("decode_*/test_clean/*")), log  # decoded with its train config (the teacher unused)
    for args, words in ((["--pruning_sweep", "mac:0.5+distill", "--distill_teacher", "exp_ci/no.pt"], "--distill_teacher exp_ci/no.pt does not exist"),
                        (["--pruning_sweep", "mac:0.5", "--distill_teacher", teacher], "--distill_teacher needs a +distill point")):  # fmt: skip
        done = subprocess.run(["./run.sh", "--ci", "true", *args], cwd=recipe_dir, env=env, capture_output=True, text=True)
        assert done.returncode == 2 and words in done.stdout + done.stderr


def test_device_check_dry_run(recipe, tmp_path):
    """benchmarks/device_check.sh (the GPU check) on CPU with the tiny upstream, on this recipe's --ci data."""
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "device_check.sh"), "--device", "cpu", "--preset", "tiny", "--batch", "1x2",
         "--steps", "3", "--recipe", str(recipe[0]), "--out", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = (tmp_path / "device_check.md").read_text()
    for step in ("## 1 facts", "## 2 shrink speed", "## 3 one training step", "## 4 ESPnet training"):
        assert step in report, report
    assert re.search(r"^shrunk +0\.50 +0\.\d+", report, re.M), report  # a measured shrunk row
    assert "10 s input, batch 1," in report and "10 s input, batch 2," in report  # launch-bound and busier
    assert re.search(r"^\| trained \| bf16 \| 1 x 2 s \| \d+ \| \d+ \| \d+ \|", report, re.M), report
    train, valid = re.search(r"^train: (.*)\nvalid: (.*)$", report, re.M).groups()
    assert "sparsity_macs=" in train and "counted_sparsity_macs=" in valid
    config = yaml.safe_load((recipe[0] / "exp_device_check" / "asr_train_asr_mac0.5" / "config.yaml").read_text())
    assert config["num_iters_per_epoch"] == 3 and config["use_amp"] is False


FAKE_SRUN = """#!/usr/bin/env bash
# stands in for slurm's srun inside an allocation: --nodes N --ntasks-per-node 1 CMD runs N local tasks
set -u
echo "srun $*" >> "${SRUN_LOG}"
[ "$1" = --nodes ] && [ "$3" = --ntasks-per-node ] && [ "$4" = 1 ] || { echo "fake srun: unexpected $*" >&2; exit 2; }
n=$2
shift 4
pids=()
for (( i = 0; i < n; i++ )); do
    SLURM_PROCID=$i SLURM_NODEID=$i SLURM_LOCALID=0 SLURM_NTASKS=$n SLURM_STEP_NUM_NODES=$n SLURM_STEP_NODELIST=localhost "$@" &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "${pid}" || rc=1; done
exit ${rc}
"""


def test_multi_node_training_through_slurm(recipe, tmp_path):
    """`--num_nodes 2 --dist_launcher slurm`: asr.sh starts ESPnet's multi-node mode under srun (here a
    stand-in that runs the two node tasks locally, gloo on CPU); without --unused_parameters, so every
    trainable parameter of the model must get a gradient (the upstream's pretraining-only ones are frozen)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    env = {**os.environ, "MAIN_ROOT": str(REPO), "PATH": f"{bin_dir}:{os.environ['PATH']}", "SRUN_LOG": str(tmp_path / "srun.log")}
    done = subprocess.run(
        ["./run.sh", "--ci", "true", "--seeds", "5", "--stage", "6", "--stop_stage", "6", "--asr_configs", "conf/train_asr_mac0.5.yaml",
         "--num_nodes", "2", "--dist_launcher", "slurm", "--train_args", "--max_epoch 1 --num_iters_per_epoch 3 --dist_backend gloo"],
        cwd=recipe[0], env=env, capture_output=True, text=True,
    )  # fmt: skip
    model = recipe[0] / "exp_ci" / "asr_train_asr_mac0.5_seed5"
    log = (model / "train.log").read_text() if (model / "train.log").exists() else ""
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:] + log[-3000:]
    assert (tmp_path / "srun.log").read_text().startswith("srun --nodes 2 --ntasks-per-node 1 ")
    config = yaml.safe_load((model / "config.yaml").read_text())
    assert config["dist_launcher"] == "slurm" and config["unused_parameters"] is False
    assert re.search(r"^\[[^]]*:0/2\] ", log, re.M), log[-2000:]  # ESPnet's rank 0 of a world of 2 (both joined)
    assert (model / "valid.acc.ave.pth").exists()
    done = subprocess.run(["./run.sh", "--ci", "true", "--num_nodes", "2"], cwd=recipe[0], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "--num_nodes 2 needs --dist_launcher slurm or mpi" in done.stdout + done.stderr


def test_self_supervised_stand_in_pretrains_on_audio_only(recipe):
    """`--standin ssl`, stage 3: local/pretrain_hubert.sh synthesises the corpus with its unlabelled
    train-clean-360, fits MFCC k-means and pretrains HuBERT by masked prediction on audio only; its
    export is the upstream the later stages use. (Two steps: the plumbing, not the representation.)"""
    recipe_dir = recipe[0]
    log = _run(recipe_dir, "--ci", "true", "--standin", "ssl", "--expdir", "exp_ci_ssl", "--stage", "3", "--stop_stage", "4",
               "--pretrain_args", "--max_epoch 1 --num_iters_per_epoch 2")  # fmt: skip
    pretrain = recipe_dir / "exp_ci_ssl" / "pretrain"
    assert "Stage 3: stand-in upstream: local/pretrain_hubert.sh -> exp_ci_ssl/pretrain/upstream.pt" in log
    assert read_checkpoint(pretrain / "upstream.pt").arch.model_type == "hubert"
    audio = pretrain / "data" / "train_ssl"
    assert sorted(p.name for p in audio.iterdir()) == ["labels", "wav.scp"]  # no transcript to read
    ssl_utts = {line.split()[0] for line in (audio / "wav.scp").read_text().splitlines()}
    finetune_utts = {line.split()[0] for line in (recipe_dir / "data_ci" / "train_clean_100" / "wav.scp").read_text().splitlines()}
    assert finetune_utts < ssl_utts  # and more: train-clean-360
    assert re.search(r"\[valid\] .*acc_m=", (pretrain / "exp" / "train.log").read_text())
    stats = yaml.safe_load((recipe_dir / "exp_ci_ssl" / "asr_stats_char" / "config.yaml").read_text())
    assert stats["frontend_conf"]["upstream_ckpt"] == "exp_ci_ssl/pretrain/upstream.pt"  # stage 4 used it
