import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from espnet_prune.pruning import (
    UnitCounts,
    UpstreamArch,
    UpstreamGates,
    build_model,
    conv_output_lengths,
    read_checkpoint,
    set_random_keep,
    shrink_upstream,
    upstream_cost,
)
from espnet_prune.pruning.presets import PRESETS

BASE_CFG = {**PRESETS["base"], "required_seq_len_multiple": 2}


def frontend_params(model: torch.nn.Module) -> int:
    """Parameters a frontend uses: everything but the masking embedding and pretraining heads."""
    skip = ("mask_emb", "label_embs_concat")
    return sum(p.numel() for n, p in model.named_parameters() if n not in skip)


def test_conv_lengths_wav2vec2_base_10s():
    arch = UpstreamArch.from_model_cfg("wav2vec2", BASE_CFG)
    assert conv_output_lengths(160000, arch.conv_kernels, arch.conv_strides) == [31999, 15999, 7999, 3999, 1999, 999, 499]


def test_wav2vec2_base_against_hand_count():
    cost = upstream_cost(UpstreamArch.from_model_cfg("wav2vec2", BASE_CFG), 10.0)
    lengths = [31999, 15999, 7999, 3999, 1999, 999, 499]
    cnn_macs = lengths[0] * 10 * 512 + sum(t * 3 * 512 * 512 for t in lengths[1:5]) + sum(t * 2 * 512 * 512 for t in lengths[5:])
    assert cost.cnn_macs == cnn_macs and round(cnn_macs / 1e9, 1) == 24.5
    assert cost.cnn_params == 512 * 10 + 2 * 512 + 4 * 512 * 512 * 3 + 2 * 512 * 512 * 2
    t, d = 500, 768  # 499 frames, padded to a multiple of 2 inside the encoder
    layer_macs = 4 * t * d * d + 2 * t * t * d + 2 * t * d * 3072
    proj, pos = 499 * 512 * d, 500 * d * (d // 16) * 128
    assert cost.transformer_macs == proj + pos + 12 * layer_macs
    # Without the T x T attention products this is the often-quoted ~69.6 GMACs.
    assert round((cost.macs - 12 * 2 * t * t * d) / 1e9, 1) == 69.6
    layer_params = 4 * (d * d + d) + 2 * d * 3072 + 3072 + d + 4 * d
    trf_params = 2 * 512 + 512 * d + d + d * (d // 16) * 128 + 128 + d + 2 * d + 12 * layer_params
    assert cost.transformer_params == trf_params
    assert round(cost.params / 1e6, 1) == 94.4


@pytest.mark.parametrize("variant", ["wav2vec2", "hubert", "wav2vec2_ln", "wavlm", "wavlm_ln"])
def test_counted_params_equal_module_params(tiny_ckpts, variant):
    ckpt = read_checkpoint(tiny_ckpts[variant])
    model = build_model(ckpt)
    assert upstream_cost(ckpt.arch, 1.0).params == frontend_params(model)
    gates = UpstreamGates(ckpt.arch)
    gates.attach(model)
    set_random_keep(gates, 0.4, torch.Generator().manual_seed(3))
    arch = shrink_upstream(model)
    assert upstream_cost(arch, 1.0).params == frontend_params(model)


def _flop_counted_macs(model: torch.nn.Module, samples: int) -> float:
    # The math SDPA backend runs attention as bmm, which FlopCounterMode counts.
    with FlopCounterMode(display=False) as counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model.extract_features(torch.randn(1, samples), None)
    return counter.get_total_flops() / 2


def _unmatmul_macs(arch, seconds: float) -> int:
    """MACs we count that are not matrix products (FlopCounterMode's only kind): WavLM's gate x bias."""
    if not (arch.gru_rel_pos and arch.rel_pos_buckets):
        return 0
    t = conv_output_lengths(round(seconds * 16000), arch.conv_kernels, arch.conv_strides)[-1]
    return sum(t * t * h for h, a in zip(arch.heads, arch.attention) if a)


@pytest.mark.parametrize("variant,seconds", [("wav2vec2", 1.0), ("wav2vec2", 1.37), ("wavlm", 1.37)])
def test_macs_match_flop_counter_dense_and_shrunk(tiny_ckpts, variant, seconds):
    ckpt = read_checkpoint(tiny_ckpts[variant])
    model = build_model(ckpt).eval()
    samples = round(seconds * 16000)
    assert _flop_counted_macs(model, samples) + _unmatmul_macs(ckpt.arch, seconds) == upstream_cost(ckpt.arch, seconds).macs
    gates = UpstreamGates(ckpt.arch)
    gates.attach(model)
    set_random_keep(gates, 0.5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        gates.attention["1"].set_keep(torch.zeros(1, dtype=torch.bool))
    arch = shrink_upstream(model)
    assert arch.attention == (True, False) and arch.heads[0] == 2
    assert _flop_counted_macs(model, samples) + _unmatmul_macs(arch, seconds) == upstream_cost(arch, seconds).macs


def test_expected_cost_with_all_gates_open_is_dense_cost(tiny_ckpts):
    arch = read_checkpoint(tiny_ckpts["hubert"]).arch
    ones = UnitCounts(
        conv_channels=[torch.tensor(float(c)) for c in arch.conv_channels],
        heads=[torch.tensor(float(h)) for h in arch.heads],
        ffn_units=[torch.tensor(float(f)) for f in arch.ffn_units],
        attention=[torch.tensor(1.0)] * arch.num_layers,
        ffn=[torch.tensor(1.0)] * arch.num_layers,
    )
    dense, expected = upstream_cost(arch, 3.0), upstream_cost(arch, 3.0, ones)
    assert float(expected.params) == dense.params and float(expected.macs) == dense.macs
    gates = UpstreamGates(arch)
    for gate in gates.modules():
        if hasattr(gate, "set_keep"):
            gate.set_keep(torch.ones(gate.num_units, dtype=torch.bool))
    assert float(gates.expected_cost(3.0).macs) == pytest.approx(dense.macs, rel=1e-5)


@pytest.mark.parametrize("variant,seed", [("wav2vec2_ln", 0), ("wav2vec2_ln", 1), ("wavlm", 2), ("wavlm_ln", 3)])
def test_expected_cost_at_binary_mask_equals_shrunk_count(tiny_ckpts, variant, seed):
    ckpt = read_checkpoint(tiny_ckpts[variant])
    model = build_model(ckpt)
    gates = UpstreamGates(ckpt.arch)
    gates.attach(model)
    g = torch.Generator().manual_seed(seed)
    for gate in gates.modules():
        if hasattr(gate, "set_keep"):
            gate.set_keep(torch.rand(gate.num_units, generator=g) < 0.6)
    final = gates.final_units()
    expected_at_mask = upstream_cost(ckpt.arch, 2.0, final)
    probs = gates.expected_cost(2.0)  # gates at +-12: probabilities are 0/1 up to ~1e-5
    arch = shrink_upstream(model)
    counted = upstream_cost(arch, 2.0)
    assert (expected_at_mask.params, expected_at_mask.macs) == (counted.params, counted.macs)
    assert float(probs.macs) == pytest.approx(counted.macs, rel=1e-4)


def test_expected_cost_is_differentiable(tiny_ckpts):
    gates = UpstreamGates(read_checkpoint(tiny_ckpts["wav2vec2"]).arch, init_drop_rate=0.3)
    gates.expected_cost(1.0).macs.backward()
    assert all(g.log_alpha.grad is not None and (g.log_alpha.grad > 0).all() for g in gates.conv_channels.values())
    assert all(g.log_alpha.grad is not None for g in gates.heads.values())


def test_input_too_short_is_an_error():
    arch = UpstreamArch.from_model_cfg("wav2vec2", BASE_CFG)
    with pytest.raises(ValueError, match="too short"):
        upstream_cost(arch, 0.001)
