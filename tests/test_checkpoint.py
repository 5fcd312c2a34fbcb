import datetime
import json
import logging
import random
import re
from pathlib import Path

import pytest
import torch

from espnet_prune.bin import cost as cost_cli
from espnet_prune.bin import make_upstream as make_cli
from espnet_prune.bin import shrink as shrink_cli
from espnet_prune.pruning import CheckpointError, UpstreamArch, build_model, load_upstream, read_checkpoint, upstream_cost
from espnet_prune.pruning.arch import parse_conv_layers
from espnet_prune.pruning.checkpoint import DIGEST_KEY, PAYLOAD_KEY, content_digest
from espnet_prune.pruning.presets import make_checkpoint


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
    with pytest.raises(CheckpointError, match="missing keys .* a fairseq one .* nor a WavLM one"):
        read_checkpoint(path)
    torch.save({"task_cfg": {}, "model_cfg": {"_name": "conformer"}, "model_weight": {}}, path)
    with pytest.raises(CheckpointError, match="not a wav2vec2, HuBERT or WavLM model"):
        read_checkpoint(path)


def test_pickle_that_needs_code_is_refused_without_allow_pickle(tmp_path, tiny_ckpts):
    ckpt = torch.load(tiny_ckpts["wav2vec2"], weights_only=True)
    ckpt["created"] = datetime.date(2020, 1, 1)  # a class that no upstream checkpoint holds
    path = tmp_path / "unsafe.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="unsafe.pt: holds datetime.date, .*allow_pickle"):
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
    # architecture metadata that disagrees with the weights, in an otherwise intact file
    meta, weights = _contents(good)
    pruned = json.loads(meta["pruned"])
    pruned["heads"] = [1, 1]
    _write(tmp_path / "bad.safetensors", weights, {**meta, "pruned": json.dumps(pruned)})
    with pytest.raises(CheckpointError, match="architecture and weights disagree"):
        load_upstream(tmp_path / "bad.safetensors")


# ---------------------------------------------------------------------------------------------
# Integrity of shrunk checkpoints: size and digest in the metadata, architecture against weights


def _contents(path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}


def _write(path, weights: dict[str, torch.Tensor], meta: dict[str, str], digest: bool = True) -> None:
    """Write a safetensors file as a writer would that got ``meta`` wrong: size and digest consistent."""
    from safetensors.torch import save_file

    meta = {k: v for k, v in meta.items() if k not in (PAYLOAD_KEY, DIGEST_KEY)}
    if digest:
        meta[PAYLOAD_KEY] = str(sum(t.numel() * t.element_size() for t in weights.values()))
        meta[DIGEST_KEY] = content_digest(weights, meta)
    save_file(weights, str(path), metadata=meta)


@pytest.fixture(scope="module")
def shrunk_file(tmp_path_factory) -> Path:
    """A tiny wav2vec2 with random masks (heads 2 + 2 of 4), shrunk and saved: the bin.shrink path."""
    path = tmp_path_factory.mktemp("shrunk") / "half.safetensors"
    dense = tmp_path_factory.mktemp("dense") / "dense.pt"
    torch.save(make_checkpoint("wav2vec2", "tiny", seed=1), dense)
    shrink_cli.main(["--ckpt", str(dense), "--random-keep", "0.5", "--seed", "1", "--out", str(path)])
    return path


def test_saved_checkpoint_records_payload_size_and_digest(shrunk_file):
    meta, weights = _contents(shrunk_file)
    header_len = int.from_bytes(shrunk_file.read_bytes()[:8], "little")
    assert int(meta[PAYLOAD_KEY]) == shrunk_file.stat().st_size - 8 - header_len
    assert meta[DIGEST_KEY] == content_digest(weights, meta) and len(meta[DIGEST_KEY]) == 64
    assert read_checkpoint(shrunk_file).arch.heads == (2, 2)
    assert [p.name for p in shrunk_file.parent.iterdir()] == ["half.safetensors"]  # no temporary file left


@pytest.mark.parametrize("keep", [0.5, 0.99, "one byte short", "inside the header"])
def test_truncated_file_names_file_and_sizes(shrunk_file, tmp_path, keep):
    data = shrunk_file.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    cut = {"one byte short": len(data) - 1, "inside the header": header_end // 2}.get(keep) or int(len(data) * keep)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:cut])
    if cut < header_end:
        message = f"{path}: truncated: expected more than {header_end} bytes, found {cut}"
    else:
        message = f"{path}: truncated: expected {len(data)} bytes, found {cut}"
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    assert str(caught.value) == message


def test_appended_bytes_are_refused(shrunk_file, tmp_path):
    path = tmp_path / "longer.safetensors"
    path.write_bytes(shrunk_file.read_bytes() + b"\0" * 3)
    with pytest.raises(CheckpointError, match="3 unexpected bytes after the tensors"):
        read_checkpoint(path)


def test_flipped_byte_in_the_payload_is_a_checksum_mismatch(shrunk_file, tmp_path):
    data = shrunk_file.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    path = tmp_path / "flipped.safetensors"
    for position in (header_end, (header_end + len(data)) // 2, len(data) - 1):
        damaged = bytearray(data)
        damaged[position] ^= 0x01  # the lowest mantissa bit: the value barely changes
        path.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: checksum mismatch"):
            read_checkpoint(path)


def test_any_flipped_byte_is_refused(shrunk_file, tmp_path):
    """A single changed byte anywhere (length prefix, header, metadata, payload) never loads."""
    data = shrunk_file.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    rng = random.Random(0)
    positions = [*range(0, 10), *rng.sample(range(10, header_end), 60), *rng.sample(range(header_end, len(data)), 60)]
    path = tmp_path / "flipped.safetensors"
    for position in positions:
        damaged = bytearray(data)
        damaged[position] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError, match=re.escape(str(path))):
            read_checkpoint(path)


def test_architecture_that_disagrees_with_weights_names_layer_and_tensor(shrunk_file, tmp_path):
    meta, weights = _contents(shrunk_file)
    path = tmp_path / "lying.safetensors"
    pruned = json.loads(meta["pruned"])
    assert pruned["heads"] == [2, 2]
    for change, words in [
        (("heads", 1, 3), "Transformer layer 1 has 3 heads of 24, so encoder.layers.1.self_attn.q_proj.weight "
         "should have shape (72, 96), but it has (48, 96)"),
        (("ffn_units", 0, 7), "Transformer layer 0 has 7 FFN units, so encoder.layers.0.fc1.weight should have shape (7, 96)"),
        (("conv_channels", 2, 31), "conv layer 2 has 31 channels, so feature_extractor.conv_layers.2.0.weight "
         "should have shape (31, 32, 3), but it has (32, 32, 3)"),
        (("attention", 0, False), "Transformer layer 0 has no attention, so encoder.layers.0.self_attn.q_proj.weight"),
    ]:
        key, layer, value = change
        lying = json.loads(meta["pruned"])
        lying[key][layer] = value
        _write(path, weights, {**meta, "pruned": json.dumps(lying)})
        with pytest.raises(CheckpointError) as caught:
            read_checkpoint(path)
        assert str(caught.value).startswith(f"{path}: architecture and weights disagree: {words}")
    # a tensor the architecture says is gone
    lying = json.loads(meta["pruned"])
    lying["ffn"][1], lying["ffn_units"][1] = False, 0
    kept = {k: v for k, v in weights.items() if not k.startswith("encoder.layers.1.fc")}
    kept.update({"encoder.layers.1.fc1.weight": torch.zeros(0, 96), "encoder.layers.1.fc1.bias": torch.zeros(0)})
    kept.update({"encoder.layers.1.fc2.weight": torch.zeros(96, 0), "encoder.layers.1.fc2.bias": torch.zeros(96)})
    _write(path, kept, {**meta, "pruned": json.dumps(lying)})
    with pytest.raises(CheckpointError, match="layer 1 has no FFN, but there is a tensor encoder.layers.1.fc2.bias"):
        read_checkpoint(path)


def test_dense_config_that_disagrees_with_weights(tiny_ckpts, tmp_path):
    ckpt = torch.load(tiny_ckpts["hubert"], weights_only=True)
    ckpt["model_cfg"]["encoder_ffn_embed_dim"] = 100
    path = tmp_path / "dense.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"layer 0 has 100 FFN units, so encoder.layers.0.fc1.weight"):
        read_checkpoint(path)


def test_file_without_digest_still_loads_with_a_warning(shrunk_file, tmp_path, caplog):
    meta, weights = _contents(shrunk_file)
    old = tmp_path / "old.safetensors"
    _write(old, weights, meta, digest=False)  # as espnet_prune wrote them before the digest
    with caplog.at_level(logging.WARNING):
        ckpt = read_checkpoint(old)
    assert f"{old}: has no sha256 digest" in caplog.text
    model = build_model(ckpt, source=str(old))
    assert upstream_cost(ckpt.arch, 1.0).params == sum(
        p.numel() for n, p in model.named_parameters() if n != "mask_emb"
    )
    # and it still must agree with its architecture
    pruned = json.loads(meta["pruned"])
    pruned["heads"][0] = 3
    _write(old, weights, {**meta, "pruned": json.dumps(pruned)}, digest=False)
    with pytest.raises(CheckpointError, match="layer 0 has 3 heads"):
        read_checkpoint(old)


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


def test_export_upstream_from_a_dense_safetensors_start_but_not_a_shrunk_one(tmp_path, capsys):
    """A model fine-tuned from our .safetensors (which records the architecture even when dense, as
    the shipped stand-in does) exports as S3PRL's format with the fine-tuned weights; from a shrunk
    start there is no dense model to write."""
    import yaml

    from espnet_prune.bin import convert as convert_cli
    from espnet_prune.bin import export_upstream

    dense, start, shrunk = tmp_path / "dense.pt", tmp_path / "start.safetensors", tmp_path / "shrunk.safetensors"
    make_cli.main(["--arch", "hubert", "--preset", "tiny", "--seed", "0", "--out", str(dense)])
    convert_cli.main(["--ckpt", str(dense), "--out", str(start)])
    shrink_cli.main(["--ckpt", str(dense), "--random-keep", "0.5", "--out", str(shrunk)])
    assert read_checkpoint(start).pruned is not None and not read_checkpoint(start).shrunk and read_checkpoint(shrunk).shrunk
    weights = read_checkpoint(start).weights
    prefix = "frontend.upstream.upstream.model."
    torch.save({prefix + k: v + 1 for k, v in weights.items()}, tmp_path / "model.pth")
    for init in (start, shrunk):
        config = tmp_path / f"config_{init.stem}.yaml"
        config.write_text(yaml.safe_dump({"frontend": "s3prl_prune", "frontend_conf": {"upstream_ckpt": str(init)}}))
        argv = ["--config", str(config), "--model_file", str(tmp_path / "model.pth"), "--out", str(tmp_path / "exported.pt")]
        if init == shrunk:
            with pytest.raises(SystemExit, match="1"):
                export_upstream.main(argv)
            assert "already shrunk" in capsys.readouterr().err
        else:
            export_upstream.main(argv)
    exported = read_checkpoint(tmp_path / "exported.pt")
    assert exported.pruned is None and sorted(exported.weights) == sorted(weights)
    assert all(torch.equal(exported.weights[k], v + 1) for k, v in weights.items())
    load_upstream(tmp_path / "exported.pt")
