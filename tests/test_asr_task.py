"""ESPnet integration: collect stats, train one epoch with pruning, shrink, decode (tiny, CPU)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from espnet_prune.pruning.cost import upstream_cost
from espnet_prune.pruning.presets import make_checkpoint

WORDS = ["abc", "bad", "cab", "dab", "ace", "bead"]
CHARS = sorted({c for w in WORDS for c in w})


def _data_dir(root: Path) -> Path:
    """Six utterances of tone + noise (0.6-1.1 s) with two-word transcripts: wav.scp, text."""
    rng = np.random.default_rng(0)
    data = root / "data"
    (data / "wav").mkdir(parents=True)
    scp, text = [], []
    for i in range(6):
        n = 9600 + 1600 * i
        t = np.arange(n) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(n)
        path = data / "wav" / f"utt{i}.wav"
        soundfile.write(path, wav.astype(np.float32), 16000)
        scp.append(f"utt{i} {path}")
        text.append(f"utt{i} {WORDS[i]} {WORDS[(i + 1) % 6]}")
    (data / "wav.scp").write_text("\n".join(scp) + "\n")
    (data / "text").write_text("\n".join(text) + "\n")
    return data


def _config(root: Path, upstream: Path) -> Path:
    conf = {
        "frontend": "s3prl_prune",
        "frontend_conf": {
            "upstream_ckpt": str(upstream),
            "multilayer_feature": True,
            "pruning_conf": {"method": "mac", "target": 0.5, "warmup_steps": 2, "macs_seconds": 1.0, "reg_lr": 0.05},
        },
        "model": "espnet_prune",
        "model_conf": {"ctc_weight": 0.3},
        "normalize": None,
        "encoder": "transformer",
        "encoder_conf": {"output_size": 32, "attention_heads": 2, "linear_units": 64, "num_blocks": 1, "input_layer": "linear"},
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 2, "linear_units": 64, "num_blocks": 1},
        "optim": "adam",
        "optim_conf": {"lr": 0.001},
        "max_epoch": 1,
        "batch_type": "folded",
        "batch_size": 3,
        "num_att_plot": 0,
        "use_tensorboard": False,  # tensorboard is not in tools/venv
    }
    path = root / "train.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def _train_cmd(config: Path, data: Path, tokens: Path, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "espnet_prune.bin.asr_train", "--config", str(config), "--ngpu", "0",
           "--num_workers", "0", "--token_type", "char", "--token_list", str(tokens), "--use_preprocessor", "true"]
    for split in ("train", "valid"):
        cmd += [f"--{split}_data_path_and_name_and_type", f"{data}/wav.scp,speech,sound",
                f"--{split}_data_path_and_name_and_type", f"{data}/text,text,text"]
    return cmd + extra


def _train(root: Path, config: Path, data: Path, tokens: Path, extra: list[str]) -> str:
    """Run the trainer; returns its log (ESPnet logs to stderr, asr.sh keeps it as train.log)."""
    done = subprocess.run(_train_cmd(config, data, tokens, extra), cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("asr")
    upstream = root / "tiny.pt"
    torch.save(make_checkpoint("wav2vec2", "tiny", seed=0), upstream)
    data = _data_dir(root)
    tokens = root / "tokens.txt"
    tokens.write_text("\n".join(["<blank>", "<unk>", "<space>", *CHARS, "<sos/eos>"]) + "\n")
    config = _config(root, upstream)
    stats, exp = root / "stats", root / "exp"
    shapes = []
    for split in ("train", "valid"):
        shapes += [f"--{split}_shape_file", f"{data}/wav.scp", f"--{split}_shape_file", f"{data}/text"]
    _train(root, config, data, tokens, ["--collect_stats", "true", "--output_dir", str(stats),
                                        "--batch_type", "unsorted", *shapes])
    shapes = []
    for split in ("train", "valid"):
        shapes += [f"--{split}_shape_file", f"{stats}/{split}/speech_shape",
                   f"--{split}_shape_file", f"{stats}/{split}/text_shape"]
    shapes += ["--fold_length", "16000", "--fold_length", "20"]
    log = _train(root, config, data, tokens, ["--output_dir", str(exp), *shapes])
    return {"log": log, "root": root, "exp": exp, "data": data, "upstream": upstream, "config": config,
            "tokens": tokens, "shapes": shapes}


def test_two_cpu_processes_train_with_gloo_through_espnet(trained, tmp_path):
    """ESPnet's distributed data parallel on CPU: torchrun starts two processes (gloo backend, ESPnet's
    external-launcher mode) that train the pruned model together, and one model is saved."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "exp_ddp"
    cmd = _train_cmd(trained["config"], trained["data"], trained["tokens"], [
        "--output_dir", str(out), *trained["shapes"], "--multiprocessing_distributed", "false",
        "--dist_backend", "gloo", "--unused_parameters", "true"])  # fmt: skip
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    done = subprocess.run([*launcher, *cmd[1:]], cwd=trained["root"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # ESPnet's log prefix is host:rank/world size; rank 1 logs warnings only, and the process group
    # of two could not have formed without it
    assert ":0/2]" in done.stderr
    assert "sparsity_macs" in done.stderr and (out / "1epoch.pth").is_file()


def test_training_killed_part_way_resumes_to_the_same_model(trained):
    """SIGKILL in the second of three epochs, re-run with --resume: the model equals an uninterrupted run's."""
    root, config, data, tokens = trained["root"], trained["config"], trained["data"], trained["tokens"]
    extra = [*trained["shapes"], "--max_epoch", "3", "--resume", "true", "--seed", "3"]
    reference, killed = root / "exp_reference", root / "exp_killed"
    _train(root, config, data, tokens, ["--output_dir", str(reference), *extra])
    log = root / "killed.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(_train_cmd(config, data, tokens, ["--output_dir", str(killed), *extra]),
                                cwd=root, stdout=subprocess.DEVNULL, stderr=err)
    # ESPnet announces an epoch after saving the previous one (its checkpoint writes are not atomic)
    deadline = time.monotonic() + 300
    while "2/3epoch started" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "2/3epoch started" in log.read_text() and not (killed / "3epoch.pth").exists()
    resumed = _train(root, config, data, tokens, ["--output_dir", str(killed), *extra])
    assert "2/3epoch started" in resumed and "1/3epoch started" not in resumed
    a = torch.load(reference / "3epoch.pth", map_location="cpu")
    b = torch.load(killed / "3epoch.pth", map_location="cpu")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_logs_pruning_stats_and_saves_gates(trained):
    log = trained["log"]
    for key in ("sparsity_macs", "lambda1_macs", "loss_pruning", "remaining_heads"):
        assert key in log, key
    # validation (eval masks) reports what shrinking would count next to the expected sparsity
    assert re.search(r"\[valid\].*counted_sparsity_macs=", log)
    state = torch.load(trained["exp"] / "1epoch.pth", map_location="cpu")
    assert any(k.endswith("log_alpha") for k in state)
    assert "frontend.objective.lambdas" in state and "frontend.objective.step" in state
    assert int(state["frontend.objective.step"]) > 0
    assert state["frontend.objective.lambdas"].abs().sum() > 0  # trained in the optimiser's pruning group
    # the trainer's resume file pickles its reporter too; it is this test's own file
    resume = torch.load(trained["exp"] / "checkpoint.pth", map_location="cpu", weights_only=False)
    groups = resume["optimizers"][0]["param_groups"]
    assert [g["lr"] for g in groups] == [0.001, 0.05] and groups[1]["weight_decay"] == 0.0


@pytest.fixture(scope="module")
def shrunk(trained) -> dict:
    """The trained model with half its units closed (gated, eval) and its shrunk model directory."""
    from espnet_prune.bin.asr_shrink import shrink_model_dir
    from espnet_prune.pruning import set_random_keep
    from espnet_prune.tasks.asr import ASRPruneTask

    exp, root = trained["exp"], trained["root"]
    # one epoch of a random model closes no gate: close half the units so shrinking changes the shapes
    model, _ = ASRPruneTask.build_model_from_file(exp / "config.yaml", exp / "1epoch.pth", "cpu")
    set_random_keep(model.frontend.upstream.gates, 0.5, torch.Generator().manual_seed(0))
    torch.save(model.state_dict(), root / "halved.pth")
    model.eval()
    out = root / "exp_shrunk"
    return {"gated": model, "out": out, "config": shrink_model_dir(exp / "config.yaml", root / "halved.pth", out)}


def test_shrunk_directory_has_pruned_architecture_and_same_features(trained, shrunk):
    from espnet_prune.tasks.asr import ASRPruneTask

    out, gated = shrunk["out"], shrunk["gated"]
    conf = yaml.safe_load(shrunk["config"].read_text())
    assert conf["frontend_conf"]["pruning_conf"] is None
    assert conf["frontend_conf"]["upstream_ckpt"] == str(out / "upstream.safetensors")
    small, _ = ASRPruneTask.build_model_from_file(shrunk["config"], out / "model.pth", "cpu")  # strict load
    small.eval()
    assert small.frontend.upstream.gates is None and small.frontend.objective is None
    assert sum(small.frontend.upstream.arch.conv_channels) < sum(gated.frontend.upstream.arch.conv_channels)
    # the budget (mac 0.5 at 1 s) decided what was cut, not each gate on its own
    budget = json.loads((out / "pruning_summary.json").read_text())["budget"]
    assert budget["seconds"] == 1.0 and budget["targets"] == {"macs": 0.5}
    dense = upstream_cost(gated.frontend.upstream.gates.arch, 1.0)
    counted = 1.0 - upstream_cost(small.frontend.upstream.arch, 1.0).macs / dense.macs
    assert budget["counted"]["macs"] == pytest.approx(counted) and abs(counted - 0.5) <= 0.01

    wav, _ = soundfile.read(trained["data"] / "wav" / "utt0.wav", dtype="float32")
    speech, lengths = torch.from_numpy(wav)[None], torch.tensor([len(wav)])
    with torch.no_grad():
        feats, feats_len = gated.frontend(speech, lengths)
        small_feats, small_len = small.frontend(speech, lengths)
    assert torch.equal(feats_len, small_len)
    assert (feats - small_feats).abs().max() <= 1e-4


def test_shrunk_directory_decodes_with_speech2text(trained, shrunk):
    # espnet2.bin.asr_inference imports the enhancement models, which need ci_sdr and fast_bss_eval
    inference = pytest.importorskip("espnet2.bin.asr_inference", reason="needs ci_sdr and fast_bss_eval")
    import espnet_prune.tasks.asr  # noqa: F401  (registers s3prl_prune, as espnet_prune.bin.asr_inference does)

    s2t = inference.Speech2Text(asr_train_config=shrunk["config"], asr_model_file=shrunk["out"] / "model.pth",
                                device="cpu", beam_size=2, ctc_weight=0.3, maxlenratio=0.5, nbest=1)
    assert s2t.asr_model.frontend.upstream.gates is None
    wav, _ = soundfile.read(trained["data"] / "wav" / "utt0.wav", dtype="float32")
    text, tokens, *_ = s2t(wav)[0]
    assert isinstance(text, str) and len(tokens) > 0


def test_unknown_frontend_key_is_an_error(trained):
    from espnet_prune.frontend.s3prl_prune import S3prlPruneFrontend

    with pytest.raises(TypeError, match="bogus"):
        S3prlPruneFrontend(upstream_ckpt=str(trained["upstream"]), bogus=1)
    with pytest.raises(ValueError, match="unknown pruning_conf keys \\['bogus'\\]"):
        S3prlPruneFrontend(upstream_ckpt=str(trained["upstream"]), pruning_conf={"method": "mac", "bogus": 1})


def test_the_pruning_method_does_not_change_what_the_global_rng_draws_next(trained):
    """Gates draw their initial values without moving the global RNG: ESPnet builds the encoder,
    decoder and CTC after the frontend, and they must start the same for every method of a sweep."""
    import torch

    from espnet_prune.frontend.s3prl_prune import S3prlPruneFrontend

    draws = {}
    for method in (None, "trf_only", "mac"):
        torch.manual_seed(0)
        frontend = S3prlPruneFrontend(str(trained["upstream"]), pruning_conf=method and {"method": method})
        assert (frontend.objective is None) == (method is None)
        draws[method] = torch.rand(4)
    assert torch.equal(draws[None], draws["trf_only"]) and torch.equal(draws[None], draws["mac"])


def test_missing_upstream_ckpt_names_it(tmp_path):
    from espnet_prune.frontend.s3prl_prune import S3prlPruneFrontend

    missing = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        S3prlPruneFrontend(upstream_ckpt=str(missing))


def test_nonfinite_loss_skips_the_batch_with_nan_gradients_then_stops(trained):
    from espnet_prune.asr.model import NonFiniteLossError
    from espnet_prune.tasks.asr import ASRPruneTask

    model, _ = ASRPruneTask.build_model_from_file(trained["exp"] / "config.yaml", trained["exp"] / "1epoch.pth", "cpu")
    model.train()
    model.max_nonfinite_losses = 1
    speech = torch.randn(2, 8000)
    lengths, text, text_lengths = torch.tensor([8000, 6000]), torch.tensor([[4, 5], [6, 4]]), torch.tensor([2, 2])
    loss, stats, _ = model(speech, lengths, text, text_lengths, utt_id=["good1", "good2"])
    assert torch.isfinite(loss) and stats["nonfinite_skipped"] == 0
    speech[1, 100] = float("nan")
    loss, stats, _ = model(speech, lengths, text, text_lengths, utt_id=["spk-a", "spk-b"])
    assert stats["nonfinite_skipped"] == 1 and model.nonfinite_losses == 1
    model.zero_grad()
    loss.backward()
    # ESPnet's trainer skips an update whose gradient norm is not finite
    assert not torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0))
    with pytest.raises(NonFiniteLossError, match=r"2 batches .*max_nonfinite_losses \(1\); the last one \(.*loss_ctc\) was utterances spk-a, spk-b"):
        model(speech, lengths, text, text_lengths, utt_id=["spk-a", "spk-b"])
    model.eval()  # validation batches are not counted
    model(speech, lengths, text, text_lengths, utt_id=["spk-a", "spk-b"])


def test_training_skips_a_nan_utterance_and_stops_after_too_many(trained, tmp_path):
    """An utterance whose audio holds NaN: ESPnet's trainer skips its batch and goes on; with
    ``max_nonfinite_losses: 0`` the run stops, naming the utterance."""
    root, config, tokens = trained["root"], trained["config"], trained["tokens"]
    data = tmp_path / "data"
    shutil.copytree(trained["data"], data)
    scp = (data / "wav.scp").read_text().replace(str(trained["data"]), str(data))
    (data / "wav.scp").write_text(scp)
    wav, _ = soundfile.read(data / "wav" / "utt3.wav", dtype="float32")
    wav[1000:1010] = np.nan
    soundfile.write(data / "wav" / "utt3.wav", wav, 16000, subtype="FLOAT")
    keys = ["--batch_type", "unsorted", "--batch_size", "2", "--max_epoch", "1"]
    for split in ("train", "valid"):
        keys += [f"--{split}_shape_file", f"{data}/wav.scp"]
    log = _train(root, config, data, tokens, ["--output_dir", str(tmp_path / "exp"), *keys])
    assert "non-finite training loss" in log and "utt3" in log and "Skipping updating the model" in log
    assert (tmp_path / "exp" / "1epoch.pth").exists()
    done = subprocess.run(_train_cmd(config, data, tokens, ["--output_dir", str(tmp_path / "exp0"), *keys,
                                                            "--model_conf", "max_nonfinite_losses=0"]),
                          cwd=root, capture_output=True, text=True)
    assert done.returncode != 0
    assert "NonFiniteLossError: training stopped: 1 batches had a NaN or infinite loss" in done.stderr
    assert "utt3" in done.stderr.split("NonFiniteLossError")[-1]


def test_decoding_killed_part_way_leaves_nothing_to_score_and_reruns_whole(trained, tmp_path):
    """SIGKILL the decoding processes mid-way: no output directory (scoring refuses), and the
    re-run writes what an uninterrupted run writes."""
    exp, data = trained["exp"], trained["data"]
    conf = tmp_path / "decode.yaml"
    conf.write_text(yaml.safe_dump({"beam_size": 2, "ctc_weight": 0.3, "maxlenratio": 0.5}))

    def argv(out: Path) -> list[str]:
        return [sys.executable, "-m", "espnet_prune.bin.asr_decode", "--asr_train_config", str(exp / "config.yaml"),
                "--asr_model_file", str(exp / "1epoch.pth"), "--decode_config", str(conf), "--data_dir", str(data),
                "--out_dir", str(out), "--nj", "2"]

    killed, reference = tmp_path / "killed" / "test", tmp_path / "reference" / "test"
    log = tmp_path / "killed.log"
    with open(log, "w") as err:
        # its own session, so the kill reaches the decoding pool's processes too
        proc = subprocess.Popen(argv(killed), stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = time.monotonic() + 300
    while not re.search(r"\| [1-5]/6 ", log.read_text()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert re.search(r"\| [1-5]/6 ", log.read_text()), log.read_text()[-2000:]
    assert not killed.exists()
    scored = subprocess.run([sys.executable, "-m", "espnet_prune.bin.score_asr", "--ref", str(data / "text"),
                             "--hyp", str(killed / "text"), "--out", str(tmp_path / "score")],
                            capture_output=True, text=True)
    assert scored.returncode != 0 and str(killed / "text") in scored.stderr
    for out in (killed, reference):
        subprocess.run(argv(out), check=True, capture_output=True)
    for name in ("text", "token"):
        assert (killed / name).read_text() == (reference / name).read_text()
    assert json.loads((killed / "decode.json").read_text())["utterances"] == 6


def test_decoding_a_model_that_cannot_load_fails_with_the_reason(trained, tmp_path):
    """A model whose upstream checkpoint has gone (a shrunk model's config names it by a path relative
    to the recipe): asr_decode exits 1 naming the file, with no output, instead of its decoding
    processes failing to start over and over."""
    config = yaml.safe_load((trained["exp"] / "config.yaml").read_text())
    config["frontend_conf"]["upstream_ckpt"] = str(tmp_path / "gone.pt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "decode"
    done = subprocess.run([sys.executable, "-m", "espnet_prune.bin.asr_decode", "--asr_train_config",
                           str(tmp_path / "config.yaml"), "--asr_model_file", str(trained["exp"] / "1epoch.pth"),
                           "--data_dir", str(trained["data"]), "--out_dir", str(out), "--nj", "2"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"upstream_ckpt '{tmp_path / 'gone.pt'}' does not exist" in done.stderr
    assert not out.exists()


def test_pre_beam_false_scores_ctc_on_every_token(trained, tmp_path):
    """``pre_beam: false`` in the decoding config: the joint search asks CTC for all tokens at each
    step; by default (ESPnet's pre-beam) only for the decoder's best few. A non-boolean is refused."""
    from espnet_prune.bin.asr_decode import build_speech2text, read_decode_config

    wav, _ = soundfile.read(trained["data"] / "wav" / "utt1.wav", dtype="float32")
    asked: dict[bool, list] = {}
    for pre_beam in (True, False):
        conf = tmp_path / f"decode_{pre_beam}.yaml"
        conf.write_text(yaml.safe_dump({"beam_size": 2, "ctc_weight": 0.3, "maxlenratio": 0.5, "pre_beam": pre_beam}))
        speech2text = build_speech2text(str(trained["exp"] / "config.yaml"), str(trained["exp"] / "1epoch.pth"),
                                        read_decode_config(conf))
        ctc = speech2text.beam_search.part_scorers["ctc"]
        asked[pre_beam] = []
        score_partial = ctc.batch_score_partial

        def recording(y, ids, state, x, _seen=asked[pre_beam], _inner=score_partial):
            _seen.append(ids)
            return _inner(y, ids, state, x)

        ctc.batch_score_partial = recording
        with torch.no_grad():
            speech2text(wav)
    vocab = len(speech2text.asr_model.token_list)
    assert asked[True] and all(ids is not None and ids.shape[-1] == 3 < vocab for ids in asked[True])
    assert asked[False] and all(ids is None for ids in asked[False])  # None: every token
    bad = tmp_path / "bad.yaml"
    bad.write_text("beam_size: 2\npre_beam: maybe\n")
    with pytest.raises(ValueError, match=f"{bad}: pre_beam takes true or false, not 'maybe'"):
        read_decode_config(bad)


def test_every_recipe_decoding_config_is_read():
    """The recipes' decoding configs hold only keys asr_decode takes (an unknown one fails stage 8)."""
    from espnet_prune.bin.asr_decode import read_decode_config

    configs = sorted(Path(__file__).resolve().parents[1].glob("egs2/*/*/conf/decode*.yaml"))
    assert len(configs) >= 6
    for config in configs:
        assert "beam_size" in read_decode_config(config), config
