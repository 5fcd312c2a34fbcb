import argparse
import json

import pytest
import torch

from espnet_prune.bin import cost as cost_cli
from espnet_prune.bin import make_upstream as make_cli
from espnet_prune.bin import shrink as shrink_cli
from espnet_prune.pruning import CheckpointError, UpstreamArch, load_upstream, read_checkpoint
from espnet_prune.pruning.arch import parse_conv_layers


def test_cli_make_cost_shrink(tmp_path, capsys):
    dense, shrunk = tmp_path / "dense.pt", tmp_path / "half.safetensors"
    make_cli.main(["--arch", "hubert", "--preset", "tiny", "--seed", "2", "--out", str(dense)])
    assert read_checkpoint(dense).model_type == "hubert"
    capsys.readouterr()
    cost_cli.main(["--ckpt", str(dense), "--seconds", "10", "--json"])
    before = json.loads(capsys.readouterr().out)
    assert before["seconds"] == 10 and before["params"]["total"] == before["params"]["cnn"] + before["params"]["transformer"]
    shrink_cli.main(["--ckpt", str(dense), "--random-keep", "0.5", "--seed", "1", "--out", str(shrunk)])
    capsys.readouterr()
    cost_cli.main(["--ckpt", str(shrunk), "--json"])
    after = json.loads(capsys.readouterr().out)
    assert 0.2 < after["macs"]["total"] / before["macs"]["total"] < 0.6
    assert 0.3 < after["params"]["total"] / before["params"]["total"] < 0.7
    assert load_upstream(shrunk).arch.conv_channels == (32,) * 7


@pytest.mark.parametrize("keep", ["0", "1.5", "-0.2"])
def test_shrink_cli_rejects_keep_outside_unit_interval(tiny_ckpts, tmp_path, keep):
    with pytest.raises(SystemExit):
        shrink_cli.main(["--ckpt", tiny_ckpts["wav2vec2"], "--random-keep", keep, "--out", str(tmp_path / "x")])


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.txt"):
        read_checkpoint(text)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")


def test_dict_that_is_not_an_upstream(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="missing keys"):
        read_checkpoint(path)
    torch.save({"task_cfg": {}, "model_cfg": {"_name": "conformer"}, "model_weight": {}}, path)
    with pytest.raises(CheckpointError, match="not a wav2vec2 or HuBERT"):
        read_checkpoint(path)


def test_raw_fairseq_checkpoint_points_to_the_converter(tmp_path):
    path = tmp_path / "wav2vec_small.pt"
    torch.save({"cfg": {"model": {}, "task": {}}, "model": {}}, path)
    with pytest.raises(CheckpointError, match="s3prl.upstream.wav2vec2.convert"):
        read_checkpoint(path)


def test_pickle_that_needs_code_is_refused_without_allow_pickle(tmp_path, tiny_ckpts):
    ckpt = torch.load(tiny_ckpts["wav2vec2"], weights_only=True)
    ckpt["args"] = argparse.Namespace(arch="wav2vec2")  # as in old fairseq checkpoints
    path = tmp_path / "unsafe.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="allow_pickle"):
        read_checkpoint(path)
    assert read_checkpoint(path, allow_pickle=True).model_type == "wav2vec2"


def test_truncated_and_inconsistent_shrunk_checkpoints(tiny_ckpts, tmp_path):
    upstream = load_upstream(tiny_ckpts["wav2vec2"])
    upstream.attach_gates()
    upstream.shrink()
    good = tmp_path / "good.safetensors"
    upstream.save(good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_upstream(truncated)
    # architecture metadata that disagrees with the weights
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(good), framework="pt") as f:
        meta, weights = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    pruned = json.loads(meta["pruned"])
    pruned["heads"] = [1, 1]
    save_file(weights, str(tmp_path / "bad.safetensors"), metadata={**meta, "pruned": json.dumps(pruned)})
    with pytest.raises(CheckpointError, match="do not match the recorded architecture"):
        load_upstream(tmp_path / "bad.safetensors")


def test_saving_with_gates_attached_is_refused(tiny_ckpts, tmp_path):
    upstream = load_upstream(tiny_ckpts["wav2vec2"])
    upstream.attach_gates()
    with pytest.raises(ValueError, match="shrink"):
        upstream.save(tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="unexpected keyword argument 'neurons'"):
        load_upstream(tiny_ckpts["wav2vec2"]).attach_gates(neurons=True)


def test_conv_layer_spec_parser_runs_no_code():
    assert parse_conv_layers("[(512, 10, 5)] + [(512, 3, 2)] * 2") == [(512, 10, 5), (512, 3, 2), (512, 3, 2)]
    with pytest.raises(ValueError, match="only lists"):
        parse_conv_layers("__import__('os').system('true')")
    with pytest.raises(ValueError):
        UpstreamArch.from_model_cfg("wav2vec2", {"conv_feature_layers": "[(8, 2, 2)]"})
