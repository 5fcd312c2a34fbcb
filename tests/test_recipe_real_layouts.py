"""The recipes for the real corpora, egs2/librispeech_100/asr1 and egs2/slurp/slu1, as far as the data
allows here: pointed at synthetic corpora in LibriSpeech's and SLURP's on-disk layouts and at
random-init checkpoints in the formats users download (a fairseq file of wav2vec2-base's
architecture for LibriSpeech, a Hugging Face directory for SLURP), they run data preparation,
token lists, statistics and one training step of their own configs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import transformers
import yaml

from espnet_prune.pruning.presets import make_checkpoint

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("data", "exp", "downloads", "dump")
ONE_STEP = "--max_epoch 1 --num_iters_per_epoch 1 --batch_type unsorted --batch_size 2 --num_workers 0"


def _recipe(tmp_path: Path, corpus: str, task: str) -> Path:
    for name in ("TEMPLATE", corpus):
        shutil.copytree(REPO / "egs2" / name, tmp_path / name, symlinks=True, ignore=shutil.ignore_patterns(*OUTPUTS))
    return tmp_path / corpus / task


def _run(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAIN_ROOT": str(REPO)}
    return subprocess.run(["./run.sh", *args], cwd=recipe, env=env, capture_output=True, text=True)


def _synth(layout: str, out: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "espnet_prune.bin.synth_corpus", "--layout", layout, "--out", str(out),
                           "--size", "tiny", "--seed", "0", "--nj", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def _trained_one_step(exp_dir: Path) -> None:
    log = (exp_dir / "train.log").read_text()
    assert re.search(r"1epoch results: \[train\]", log), log[-3000:]
    assert (exp_dir / "checkpoint.pth").is_file()


def test_librispeech_100_first_stages_and_one_step_on_base_architecture(tmp_path):
    recipe = _recipe(tmp_path, "librispeech_100", "asr1")
    _synth("librispeech", tmp_path / "corpus")
    ckpt = tmp_path / "wav2vec_small.pt"
    s3prl = make_checkpoint("wav2vec2", "base", seed=0)
    model_cfg = s3prl["model_cfg"]  # its "_name" is wav2vec2
    task_cfg = {"_name": "audio_pretraining", **s3prl["task_cfg"]}
    torch.save({"args": None, "cfg": {"model": model_cfg, "task": task_cfg}, "model": s3prl["model_weight"]}, ckpt)  # fairseq's layout
    missing = _run(recipe, "--librispeech_root", str(tmp_path / "corpus"), "--stage", "4", "--stop_stage", "4")
    assert missing.returncode != 0 and "--ssl_ckpt" in missing.stdout + missing.stderr
    done = _run(
        recipe, "--librispeech_root", str(tmp_path / "corpus"), "--ssl_ckpt", str(ckpt), "--stop_stage", "6",
        "--local_data_opts", f"--librispeech_root {tmp_path / 'corpus'} --subsets train-clean-100,dev-clean,test-clean",
        "--test_sets", "test_clean", "--nbpe", "40", "--asr_configs", "conf/train_asr_pruned.yaml",
        "--pruning_sweep", "mac:0.4", "--train_args", ONE_STEP,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    for n in (1, 2, 4, 6):
        assert re.search(rf"Stage {n} done in \d+ s", done.stdout + done.stderr), f"stage {n}"
    exp = recipe / "exp" / "asr_train_asr_pruned_mac0.4"
    _trained_one_step(exp)
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["frontend_conf"]["pruning_conf"]["method"] == "mac"
    assert config["frontend_conf"]["upstream_ckpt"] == str(ckpt)
    assert "sparsity_macs" in (exp / "train.log").read_text()


def test_slurp_first_stages_and_one_step(tmp_path):
    recipe = _recipe(tmp_path, "slurp", "slu1")
    corpus = tmp_path / "slurp_corpus"
    _synth("slurp", corpus)
    ckpt = tmp_path / "wav2vec2_tiny_hf"  # a Hugging Face directory, as huggingface-cli downloads it
    config = transformers.Wav2Vec2Config(
        hidden_size=96, num_hidden_layers=2, num_attention_heads=4, intermediate_size=192, conv_dim=(64,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=20,
    )
    transformers.Wav2Vec2ForCTC(config).save_pretrained(ckpt)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(ckpt)
    bad = _run(recipe, "--slurp_root", str(tmp_path / "nowhere"), "--ssl_ckpt", str(ckpt), "--stop_stage", "1")
    assert bad.returncode != 0 and "--slurp_root must be the SLURP folder" in bad.stderr
    done = _run(
        recipe, "--slurp_root", str(corpus), "--ssl_ckpt", str(ckpt), "--stop_stage", "6",
        "--test_sets", "test", "--asr_configs", "conf/train_slu_pruned.yaml", "--pruning_sweep", "size:0.3",
        "--train_args", ONE_STEP,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    data = recipe / "data"
    intents = sorted({line.split()[1] for line in (data / "train" / "intent").read_text().splitlines()})
    assert (data / "token_list" / "intents.txt").read_text().split() == intents
    words = (data / "token_list" / "word" / "tokens.txt").read_text().split()
    assert "SEP" in words and words[0] == "<blank>" and words[-1] == "<sos/eos>"
    exp = recipe / "exp" / "slu_train_slu_pruned_size0.3"
    _trained_one_step(exp)
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["model"] == "espnet_prune_slu" and config["model_conf"]["intent_list"][1:] == intents
    assert "loss_intent" in (exp / "train.log").read_text()
