"""Checkpoints as people get them: Hugging Face transformers directories and fairseq files.

Checked against the reference implementation (transformers itself), not our own code: random
tiny transformers models are saved with ``save_pretrained``, loaded through ``load_upstream``,
and every layer's hidden states are compared with transformers' ``output_hidden_states``.
"""

import argparse
import json
import logging
import os
import re

import numpy as np
import pytest
import torch
import transformers
from omegaconf import OmegaConf

from espnet_prune.bin import convert as convert_cli
from espnet_prune.bin import cost as cost_cli
from espnet_prune.pruning import CheckpointError, build_model, load_upstream, read_checkpoint, upstream_cost
from espnet_prune.pruning.presets import make_checkpoint

TINY = dict(
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=96,
    conv_dim=(32,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    feat_proj_dropout=0.0,
    layerdrop=0.0,
)
# the pretraining model's quantiser, at tiny size
PRETRAINING = dict(codevector_dim=16, proj_codevector_dim=16, num_codevectors_per_group=8)

# (transformers class, config overrides, do_normalize): both extractor norms, both layer-norm
# placements, the bare model and the task models whose heads are left out
VARIANTS = {
    "wav2vec2_pretraining_group": ("Wav2Vec2ForPreTraining", dict(PRETRAINING), False),
    "wav2vec2_ctc_layer_stable": (
        "Wav2Vec2ForCTC",
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, vocab_size=12),
        True,
    ),
    "wav2vec2_model_layer": ("Wav2Vec2Model", dict(feat_extract_norm="layer"), False),
    "hubert_model_group": ("HubertModel", {}, False),
    "hubert_ctc_layer_stable": (
        "HubertForCTC",
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, vocab_size=12),
        True,
    ),
    # few buckets, so that 1 s of frames reaches the logarithmically spaced ones
    "wavlm_model_group": ("WavLMModel", dict(num_buckets=16, max_bucket_distance=40), False),
    "wavlm_ctc_layer_stable": (
        "WavLMForCTC",
        dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, vocab_size=12, num_buckets=16, max_bucket_distance=40),
        True,
    ),
}


def save_hf_model(directory, name: str, seed: int = 0) -> torch.nn.Module:
    """A random transformers model of variant ``name``, saved as the hub has them; returned in eval mode."""
    cls_name, overrides, normalize = VARIANTS[name]
    cls = getattr(transformers, cls_name)
    config = cls.config_class(**TINY, **overrides)
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():  # transformers initialises WavLM's per-head gate constants to one: make them differ
        for name, param in model.named_parameters():
            if name.endswith("gru_rel_pos_const"):
                param.uniform_(0.5, 1.5)
    model.save_pretrained(directory)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=normalize, return_attention_mask=True).save_pretrained(directory)
    return model


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory) -> dict[str, tuple[str, torch.nn.Module]]:
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for i, name in enumerate(VARIANTS):
        out[name] = (str(root / name), save_hf_model(root / name, name, seed=i))
    return out


def _base(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "base_model", model)


def _waveforms() -> list[np.ndarray]:
    g = np.random.default_rng(0)
    return [g.standard_normal(n).astype(np.float32) * 0.3 + 0.05 for n in (16000, 9000, 12345)]


def _hf_hidden_states(hf_model, directory, wavs, frames=None):
    """transformers' hidden states, with its own feature extractor (normalisation, padding, mask).

    ``frames``: the valid frames per utterance, to give transformers a mask that selects those.
    transformers 5 records the last layer's output before the final layer norm of the
    stable-layer-norm models in ``hidden_states``; its ``last_hidden_state`` (and transformers
    4's ``hidden_states[-1]``) is after it, as S3PRL's last hidden state.
    """
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(directory)
    inputs = extractor(wavs, sampling_rate=16000, padding=True, return_tensors="pt")
    mask = inputs.attention_mask
    if frames is not None:  # the shortest sample count whose convolution output has that many frames
        total = mask.shape[1]
        counts = _base(hf_model)._get_feat_extract_output_lengths(torch.arange(total + 1))
        samples = [int(torch.nonzero(counts >= n)[0]) for n in frames]
        mask = (torch.arange(total)[None, :] < torch.tensor(samples)[:, None]).long()
    with torch.no_grad():
        out = _base(hf_model)(inputs.input_values, attention_mask=mask, output_hidden_states=True)
    return (*out.hidden_states[:-1], out.last_hidden_state)


def _fairseq_hubert_frames(lengths: list[int], total: int, frames: int) -> list[int]:
    """Valid frames by fairseq's HuBERT (``forward_padding_mask``): a frame is padding when its
    whole block of ``total // frames`` samples is; wav2vec2 and transformers use the convolution's
    output length instead, which can be one frame fewer."""
    block = total // frames
    return [min(frames, -(-n // block)) for n in lengths]


def _assert_same_states(ours, theirs, lengths):
    """Compare the valid frames (S3PRLUpstream reports round(samples / 320) frames, padding with
    copies of the last one; the convolutions give ``lengths``)."""
    assert len(ours) == len(theirs)
    for layer, (a, b) in enumerate(zip(ours, theirs)):
        scale = b.abs().max()
        for i, n in enumerate(lengths):
            diff = (a[i, :n] - b[i, :n]).abs().max()
            assert diff <= 1e-4 * scale, f"layer {layer}, utterance {i}: max diff {diff:.3g}, scale {scale:.3g}"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_hidden_states_equal_transformers(hf_dirs, name):
    directory, hf_model = hf_dirs[name]
    upstream = load_upstream(directory).eval()
    assert upstream.upstream.normalize_waveform == VARIANTS[name][2]
    wavs = _waveforms()
    frames = _base(hf_model)._get_feat_extract_output_lengths(torch.tensor([len(w) for w in wavs]))
    # unpadded: equal lengths, no mask on either side
    same = [wavs[0], wavs[0][::-1].copy()]
    theirs = _hf_hidden_states(hf_model, directory, same)
    with torch.no_grad():
        ours, _ = upstream(torch.tensor(np.stack(same)), torch.tensor([16000, 16000]))
    _assert_same_states(ours, theirs, [int(frames[0])] * 2)
    # padded: transformers' attention_mask and fairseq's padding mask mean the same thing (valid
    # frames attend only to valid frames; padded frames are zeroed before the positional conv).
    # transformers advises no attention_mask for group-norm models because their fine-tuning used
    # none; the computation with one is still fairseq's, which the upstream follows.
    # HuBERT counts valid frames its own way (the upstream follows fairseq): transformers is given
    # the mask of those frames.
    frames = frames.tolist()
    if upstream.arch.model_type in ("hubert", "wavlm"):
        frames = _fairseq_hubert_frames([len(w) for w in wavs], 16000, frames[0])
    theirs = _hf_hidden_states(hf_model, directory, wavs, frames)
    padded = torch.nn.utils.rnn.pad_sequence([torch.tensor(w) for w in wavs], batch_first=True)
    with torch.no_grad():
        ours, _ = upstream(padded, torch.tensor([len(w) for w in wavs]))
    _assert_same_states(ours, theirs, frames)


def test_task_heads_are_left_out_and_said_so(hf_dirs, caplog):
    directory, hf_model = hf_dirs["wav2vec2_pretraining_group"]
    with caplog.at_level(logging.INFO):
        ckpt = read_checkpoint(os.path.join(directory, "config.json"))  # the config's path works too
    assert "left out the task heads ['project_hid', 'project_q', 'quantizer']" in caplog.text
    assert not any(k.startswith(("quantizer", "project")) for k in ckpt.weights)
    directory, _ = hf_dirs["hubert_ctc_layer_stable"]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        read_checkpoint(directory)
    assert "left out the task heads ['lm_head']" in caplog.text


def test_params_equal_transformers_minus_left_out_heads(hf_dirs):
    for name, (directory, hf_model) in hf_dirs.items():
        ckpt = read_checkpoint(directory)
        base = _base(hf_model)
        # the counted cost leaves out the masking embedding too (used only by masked pretraining)
        assert upstream_cost(ckpt.arch, 1.0).params == base.num_parameters() - base.masked_spec_embed.numel(), name


def test_macs_agree_with_flop_counter_on_transformers(hf_dirs):
    """Convention: fairseq pads the Transformer input to an even number of frames (the upstream
    does); transformers does not, so the two agree for inputs with an even number of frames.
    (The counter misses SDPA's products on CPU: transformers' eager attention is counted.) WavLM:
    the counter counts matrix products only, not the gate's product with each head's T x T bias."""
    from torch.utils.flop_counter import FlopCounterMode

    for name in ("wav2vec2_pretraining_group", "hubert_ctc_layer_stable", "wavlm_model_group"):
        directory, _ = hf_dirs[name]
        cls_name, overrides, _ = VARIANTS[name]
        model = getattr(transformers, cls_name)(getattr(transformers, cls_name).config_class(**TINY, **overrides))
        model = _base(model).eval()
        model.set_attn_implementation("eager")
        samples = 16000  # 49 frames: odd
        frames = int(model._get_feat_extract_output_lengths(torch.tensor(samples)))
        samples += 320 * (frames % 2)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.randn(1, samples))
        arch = read_checkpoint(directory).arch
        t = frames + frames % 2
        gate_products = sum(t * t * h for h in arch.heads) if arch.gru_rel_pos else 0
        assert upstream_cost(arch, samples / 16000).macs == counter.get_total_flops() // 2 + gate_products, name


@pytest.mark.parametrize(
    "cls_name,params",
    # WavLM Base+ = wav2vec2-base + a 320 x 12 bias table + per layer grep_linear (64 x 8 + 8) and grep_a (12)
    [("Wav2Vec2ForPreTraining", 94_370_944), ("WavLMModel", 94_370_944 + 320 * 12 + 12 * (64 * 8 + 8 + 12))],
)
def test_cost_cli_on_base_configs(tmp_path, capsys, cls_name, params):
    """wav2vec2-base's and WavLM Base+'s transformers configs (the defaults): the same parameters as
    transformers' num_parameters() minus the left-out heads (quantizer, project_q, project_hid) and
    masked_spec_embed."""
    cls = getattr(transformers, cls_name)
    model = cls(cls.config_class())
    model.save_pretrained(tmp_path)
    base = _base(model)
    left_out = model.num_parameters() - base.num_parameters() + base.masked_spec_embed.numel()
    cost_cli.main(["--ckpt", str(tmp_path), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["params"]["total"] == model.num_parameters() - left_out == params


def test_unilm_wavlm_checkpoint_loads_as_s3prl_reads_it(tmp_path, padded_batch):
    """microsoft/unilm's WavLM layout (``{"cfg", "model"}``, what S3PRL's ``wavlm_local`` reads)."""
    from s3prl.nn import S3PRLUpstream

    path = tmp_path / "WavLM-tiny.pt"
    torch.save(make_checkpoint("wavlm", "tiny", seed=2, num_buckets=16, max_distance=40), path)
    ckpt = read_checkpoint(path)
    assert ckpt.model_type == "wavlm" and ckpt.arch.rel_pos_buckets == 16 and ckpt.arch.gru_rel_pos
    ours, theirs = load_upstream(path).eval(), S3PRLUpstream("wavlm_local", path_or_url=str(path)).eval()
    gates = ours.attach_gates()  # our attention modules in place, every unit kept
    for gate in gates.modules():
        if hasattr(gate, "set_keep"):
            gate.set_keep(torch.ones(gate.num_units, dtype=torch.bool))
    with torch.no_grad():
        (a, lengths), (b, _) = ours(*padded_batch), theirs(*padded_batch)
    _assert_same_states(a, b, lengths[0].tolist())


def test_convert_writes_our_format(hf_dirs, tmp_path, capsys):
    directory, hf_model = hf_dirs["wav2vec2_ctc_layer_stable"]
    out = tmp_path / "w2v.safetensors"
    convert_cli.main(["--ckpt", directory, "--out", str(out)])
    assert "wrote" in capsys.readouterr().out
    a, b = load_upstream(directory).eval(), load_upstream(out).eval()
    assert b.upstream.normalize_waveform and b.arch == a.arch
    wavs = torch.randn(2, 8000)
    with torch.no_grad():
        for x, y in zip(a(wavs, torch.tensor([8000, 6000]))[0], b(wavs, torch.tensor([8000, 6000]))[0]):
            assert torch.equal(x, y)


# ---------------------------------------------------------------------------------------------
# fairseq checkpoints, read without fairseq


def _fairseq_state(s3prl_ckpt: dict, layout: str) -> dict:
    """A fairseq pretraining checkpoint holding the model of an S3PRL-converted one.

    fairseq's checkpoint_utils.save_state writes {"args", "cfg", "model", "optimizer_history",
    "extra_state", "last_optimizer_state"}: before hydra (fairseq <= 0.10, wav2vec_small.pt)
    "args" is an argparse.Namespace of every option (model = args.arch, task = args.task) and
    there is no "cfg"; after, "args" is None and "cfg" an omegaconf DictConfig (or its plain
    dict) with sections "common", "task", "model", ... whose "_name" say which.
    """
    model_cfg, task_cfg = dict(s3prl_ckpt["model_cfg"]), dict(s3prl_ckpt["task_cfg"])
    name = model_cfg.pop("_name")
    task_name = "hubert_pretraining" if name == "hubert" else "audio_pretraining"
    state = {
        "model": s3prl_ckpt["model_weight"],
        "optimizer_history": [
            {"criterion_name": "Wav2vecCriterion", "optimizer_name": "FairseqAdam",
             "lr_scheduler_state": {"best": 2.5}, "num_updates": 400000}
        ],
        "extra_state": {"epoch": 57, "train_iterator": {"epoch": 57, "iterations_in_epoch": 120}},
        "last_optimizer_state": {"state": {}, "param_groups": [{"lr": 5e-4, "betas": (0.9, 0.98)}]},
    }
    if layout == "args":
        options = {**task_cfg, **model_cfg, "arch": name, "task": task_name, "lr": [5e-4], "max_update": 400000}
        state["args"] = argparse.Namespace(**options)
    else:
        cfg = {
            "common": {"fp16": True, "log_interval": 200},
            "task": {"_name": task_name, **task_cfg},
            "model": {"_name": name, **model_cfg},
            "optimization": {"max_update": 400000, "lr": [5e-4]},
        }
        state["args"] = None
        state["cfg"] = OmegaConf.create(cfg) if layout == "cfg_omegaconf" else cfg
    return state


@pytest.mark.parametrize("arch", ["wav2vec2", "hubert"])
@pytest.mark.parametrize("layout", ["args", "cfg_omegaconf", "cfg_dict"])
def test_fairseq_checkpoint_loads_as_the_s3prl_converted_one(tmp_path, arch, layout, padded_batch):
    s3prl_ckpt = make_checkpoint(arch, "tiny", seed=3)
    converted, raw = tmp_path / "converted.pt", tmp_path / "fairseq.pt"
    torch.save(s3prl_ckpt, converted)
    torch.save(_fairseq_state(s3prl_ckpt, layout), raw)
    a, b = load_upstream(converted).eval(), load_upstream(raw).eval()
    assert a.arch == b.arch
    state_a = {k: v for k, v in a.model.state_dict().items() if k != "label_embs_concat"}  # a HuBERT pretraining head
    state_b = b.model.state_dict()
    assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    with torch.no_grad():
        for x, y in zip(a(*padded_batch)[0], b(*padded_batch)[0]):
            assert torch.equal(x, y)


class _Payload:
    """What a malicious pickle holds: unpickling it calls a function (here: creates a file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_with_any_other_class_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "it_ran"
    state = _fairseq_state(make_checkpoint("wav2vec2", "tiny", seed=0), "args")
    state["extra_state"]["payload"] = _Payload(str(marker))
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"evil.pt: holds posix.mkdir, which an upstream checkpoint does not"):
        read_checkpoint(path)
    assert not marker.exists()
    state["extra_state"]["payload"] = np.float64(1.0)  # not in fairseq checkpoints either: named as well
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"holds numpy"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    "layout, name, words",
    [
        ("cfg_dict", "wav2vec_ctc", "fairseq model 'wav2vec_ctc' (cfg.model._name) is not supported"),
        ("args", "transformer_lm", "fairseq model 'transformer_lm' (args.arch) is not supported"),
    ],
)
def test_fairseq_model_of_another_kind_is_named(tmp_path, layout, name, words):
    state = _fairseq_state(make_checkpoint("wav2vec2", "tiny", seed=0), layout)
    if layout == "args":
        state["args"].arch = name
    else:
        state["cfg"]["model"]["_name"] = name
    path = tmp_path / "other.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=rf"other.pt: {re.escape(words)}; supported are the pretrained models \['wav2vec2', 'hubert'\]"):
        read_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# Bad transformers directories


@pytest.mark.parametrize("model_type", ["whisper", "data2vec-text"])
def test_directory_of_another_model_type_is_named(tmp_path, model_type):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": ["X"]}))
    with pytest.raises(CheckpointError, match=rf"model_type '{model_type}' is not supported; supported are \['wav2vec2', 'hubert', 'wavlm'\]"):
        read_checkpoint(tmp_path)


def test_missing_and_truncated_weight_files_are_named(hf_dirs, tmp_path):
    directory, _ = hf_dirs["hubert_model_group"]
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (broken / name).write_bytes(open(os.path.join(directory, name), "rb").read())
    with pytest.raises(CheckpointError, match=rf"{broken}: no weights file \(model.safetensors or pytorch_model.bin"):
        read_checkpoint(broken)
    data = open(os.path.join(directory, "model.safetensors"), "rb").read()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"{broken}/model.safetensors: cannot be read as a weights file"):
        read_checkpoint(broken)
    os.unlink(broken / "model.safetensors")
    torch.save(read_checkpoint(directory).weights, broken / "pytorch_model.bin")
    data = (broken / "pytorch_model.bin").read_bytes()
    (broken / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"{broken}/pytorch_model.bin: cannot be read as a weights file"):
        read_checkpoint(broken)


def test_pytorch_model_bin_and_old_weight_norm_names(hf_dirs, tmp_path, padded_batch):
    """Older hub uploads: pytorch_model.bin, positional conv weight norm saved as weight_g/weight_v."""
    directory, _ = hf_dirs["wav2vec2_pretraining_group"]
    old = tmp_path / "old"
    old.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (old / name).write_bytes(open(os.path.join(directory, name), "rb").read())
    from safetensors.torch import load_file

    weights = load_file(os.path.join(directory, "model.safetensors"))
    stem = "wav2vec2.encoder.pos_conv_embed.conv."
    weights[stem + "weight_g"] = weights.pop(stem + "parametrizations.weight.original0")
    weights[stem + "weight_v"] = weights.pop(stem + "parametrizations.weight.original1")
    torch.save(weights, old / "pytorch_model.bin")
    a, b = load_upstream(directory).eval(), load_upstream(old).eval()
    with torch.no_grad():
        for x, y in zip(a(*padded_batch)[0], b(*padded_batch)[0]):
            assert torch.equal(x, y)


def test_config_and_weights_that_disagree_name_tensor_and_shapes(hf_dirs, tmp_path):
    directory, _ = hf_dirs["wav2vec2_model_layer"]
    lying = tmp_path / "lying"
    lying.mkdir()
    (lying / "model.safetensors").write_bytes(open(os.path.join(directory, "model.safetensors"), "rb").read())
    config = json.load(open(os.path.join(directory, "config.json")))
    (lying / "config.json").write_text(json.dumps({**config, "intermediate_size": 100}))
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(lying)
    assert "encoder.layers.0.feed_forward.intermediate_dense.weight should have shape (100, 48), but it has (96, 48)" in str(caught.value)
    (lying / "config.json").write_text(json.dumps({**config, "num_conv_pos_embeddings": 8}))
    ckpt = read_checkpoint(lying)  # the positional conv is not part of the pruned architecture
    with pytest.raises(CheckpointError) as caught:
        build_model(ckpt, source=str(lying))
    assert str(caught.value) == (
        f"{lying}: config and weights disagree: encoder.pos_conv_embed.conv.parametrizations.weight.original0 "
        "has shape (1, 1, 16), the config gives (1, 1, 8)"
    )
