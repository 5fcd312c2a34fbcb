"""HuBERT masked-prediction pretraining: MFCC k-means labels on the CNN's frames, a couple of
steps through ESPnet's trainer, and the exported checkpoint as load_upstream reads it (tiny, CPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from espnet_prune.bin import export_upstream, hubert_labels
from espnet_prune.pruning import load_upstream
from espnet_prune.pruning.checkpoint import build_model, read_checkpoint
from espnet_prune.pruning.presets import make_checkpoint
from espnet_prune.ssl.model import HubertPretrainModel
from espnet_prune.ssl.targets import STRIDE, conv_frames, mfcc_features

K = 4
LENGTHS = [9600 + 1700 * i for i in range(6)]  # 0.6-1.1 s, none a whole number of strides


def _run(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    """Six tone + noise utterances, their labels, and a 2-step pretraining of a tiny HuBERT."""
    root = tmp_path_factory.mktemp("hubert")
    rng = np.random.default_rng(0)
    data = root / "data"
    (data / "wav").mkdir(parents=True)
    scp = []
    for i, n in enumerate(LENGTHS):
        t = np.arange(n) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (200 + 300 * (t * (i + 1) % 1 > 0.5)) * t) + 0.05 * rng.standard_normal(n)
        soundfile.write(data / "wav" / f"utt{i}.wav", wav.astype(np.float32), 16000)
        scp.append(f"utt{i} {data / 'wav' / f'utt{i}.wav'}")
    (data / "wav.scp").write_text("\n".join(scp) + "\n")
    hubert_labels.main(["fit", "--wav_scp", str(data / "wav.scp"), "--num_clusters", str(K),
                        "--max_frames", "150", "--out", str(root / "kmeans.npy")])
    hubert_labels.main(["dump", "--wav_scp", str(data / "wav.scp"), "--kmeans", str(root / "kmeans.npy"),
                        "--out", str(data / "labels")])

    upstream = root / "init.pt"
    torch.save(make_checkpoint("hubert", "tiny", seed=0, num_classes=K, extractor_mode="layer_norm",
                               layer_norm_first=True, mask_length=3), upstream)
    config = root / "pretrain.yaml"
    config.write_text(yaml.safe_dump({
        "model_conf": {"upstream_ckpt": str(upstream)},
        "optim": "adamw", "optim_conf": {"lr": 0.001},
        "batch_size": 3, "max_epoch": 1, "num_iters_per_epoch": 2,
        "num_att_plot": 0, "use_tensorboard": False, "log_interval": 1,
    }))
    common = ["--config", str(config), "--ngpu", "0", "--num_workers", "0"]
    for split in ("train", "valid"):
        common += [f"--{split}_data_path_and_name_and_type", f"{data}/wav.scp,speech,sound",
                   f"--{split}_data_path_and_name_and_type", f"{data}/labels,labels,text_int"]
    exp = root / "exp"
    # unsorted batches need no shape statistics (the recipe's folded ones do: collect_stats)
    shapes = [a for split in ("train", "valid") for a in (f"--{split}_shape_file", f"{data}/wav.scp")]
    log = _run("espnet_prune.bin.hubert_train", *common, "--batch_type", "unsorted", "--output_dir", str(exp),
               *shapes, cwd=root)
    (root / "train.log").write_text(log)
    export_upstream.main(["--config", str(exp / "config.yaml"), "--model_file", str(exp / "1epoch.pth"),
                          "--out", str(root / "upstream.pt")])
    return {"root": root, "data": data, "exp": exp, "upstream": upstream, "log": root / "train.log"}


def test_labels_are_one_per_cnn_frame_of_each_utterance(run):
    ckpt = read_checkpoint(run["upstream"])
    model, conv_layers = build_model(ckpt), eval(ckpt.model_cfg["conv_feature_layers"])
    lines = (run["data"] / "labels").read_text().splitlines()
    assert [line.split()[0] for line in lines] == [f"utt{i}" for i in range(6)]
    for line, n in zip(lines, LENGTHS):
        labels = [int(x) for x in line.split()[1:]]
        with torch.no_grad():
            frames = model.feature_extractor(torch.zeros(1, n)).size(2)  # S3PRL's CNN itself
        assert len(labels) == frames == int(conv_frames(torch.tensor(n), conv_layers))
        assert set(labels) <= set(range(K))


def test_mfcc_frame_j_sees_the_cnn_frame_j_window():
    """A burst in samples [320 j + 80, 320 j + 320) lies in CNN frame j's window only (25 ms windows
    every 20 ms overlap by 80 samples): the loudest MFCC frame must be j."""
    rng = np.random.default_rng(1)
    for j in (0, 3, 17):
        wav = 1e-3 * rng.standard_normal(16000)
        wav[STRIDE * j + 80: STRIDE * j + 320] += rng.standard_normal(240)
        feats = mfcc_features(torch.from_numpy(wav).float())
        assert len(feats) == int(conv_frames(torch.tensor(16000), [(1, 400, 320)]))
        assert int(feats[:, 0].argmax()) == j  # c0: the log energy of the window


def test_pretraining_logs_masked_accuracy_and_exports_a_hubert_checkpoint(run):
    log = run["log"].read_text()
    assert "acc_m=" in log and "loss_m=" in log
    assert (run["exp"] / "checkpoint.pth").is_file()  # ESPnet's resumable state
    exported = read_checkpoint(run["root"] / "upstream.pt")
    init = read_checkpoint(run["upstream"])
    assert exported.model_type == "hubert" and exported.model_cfg == init.model_cfg
    assert exported.dictionaries_symbols == [[str(i) for i in range(K)]]
    assert set(exported.weights) == set(init.weights)  # the pretraining heads included
    for name in ("label_embs_concat", "final_proj.weight", "encoder.layers.0.fc1.weight"):
        assert not torch.equal(exported.weights[name], init.weights[name]), name
    upstream = load_upstream(run["root"] / "upstream.pt").eval()
    wavs = torch.randn(2, 16000)
    hidden, lengths = upstream(wavs, torch.tensor([16000, 12000]))
    assert len(hidden) == 3 and hidden[-1].shape[0] == 2 and hidden[-1].shape[2] == 96


def test_labels_not_on_the_cnn_frames_are_refused(run):
    model = HubertPretrainModel(str(run["upstream"]))
    lengths = torch.tensor([16000, 12000])
    frames = conv_frames(lengths, model.conv_layers)
    labels = torch.zeros(2, int(frames.max()), dtype=torch.long)
    loss, stats, _ = model(torch.randn(2, 16000), lengths, labels, frames)
    assert torch.isfinite(loss) and 0 < float(stats["masked_frac"]) < 1
    with pytest.raises(ValueError, match="CNN's frames"):
        model(torch.randn(2, 16000), lengths, labels, frames * 2)  # labels at 10 ms


def test_only_hubert_has_label_classes():
    assert len(make_checkpoint("hubert", "tiny", 0, num_classes=7)["dictionaries_symbols"][0]) == 7
    with pytest.raises(ValueError, match="num_classes"):
        make_checkpoint("wav2vec2", "tiny", 0, num_classes=7)
