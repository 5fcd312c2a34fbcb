import pytest
import torch

from espnet_prune.pruning import load_upstream
from espnet_prune.pruning.cost import upstream_cost


def _soften(gates, seed: int) -> None:
    """Random log_alpha: deterministic masks drop some units and keep others at soft values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for kind in ("conv_channels", "heads", "ffn_units"):
            for gate in getattr(gates, kind).values():
                gate.log_alpha.copy_(torch.randn(gate.num_units, generator=g) * 2.0 + 0.5)


def _outputs(upstream, batch):
    with torch.no_grad():
        hs, lens = upstream(*batch)
    return hs, lens


def _assert_same(a, b, tol=1e-4):
    (hs_a, lens_a), (hs_b, lens_b) = a, b
    assert len(hs_a) == len(hs_b)
    for h_a, h_b, n_a, n_b in zip(hs_a, hs_b, lens_a, lens_b):
        assert torch.equal(n_a, n_b)
        for i, n in enumerate(n_a):  # compare valid frames only
            assert (h_a[i, :n] - h_b[i, :n]).abs().max() <= tol


@pytest.mark.parametrize("variant", ["wav2vec2", "hubert", "wav2vec2_ln", "wavlm", "wavlm_ln"])
def test_shrunk_output_equals_gated_eval_output(tiny_ckpts, padded_batch, variant):
    upstream = load_upstream(tiny_ckpts[variant]).eval()
    gates = upstream.attach_gates()
    _soften(gates, seed=7)
    gated = _outputs(upstream, padded_batch)
    expected = upstream_cost(upstream.arch, 10.0, gates.final_units())
    arch = upstream.shrink()
    assert upstream.gates is None and not any("pruning_gates" in k for k in upstream.state_dict())
    assert sum(arch.conv_channels) < 7 * 64 and sum(arch.heads) < 2 * 4
    _assert_same(gated, _outputs(upstream, padded_batch))
    counted = upstream.cost(10.0)
    assert (counted.params, counted.macs) == (expected.params, expected.macs)


def test_all_gates_open_equals_unwrapped_s3prl_upstream(tiny_ckpts, padded_batch):
    from s3prl.nn import S3PRLUpstream

    reference = S3PRLUpstream("wav2vec2_local", path_or_url=tiny_ckpts["wav2vec2"]).eval()
    upstream = load_upstream(tiny_ckpts["wav2vec2"]).eval()
    _assert_same(_outputs(reference, padded_batch), _outputs(upstream, padded_batch), tol=1e-6)
    gates = upstream.attach_gates()
    for gate in gates.modules():
        if hasattr(gate, "set_keep"):
            gate.set_keep(torch.ones(gate.num_units, dtype=torch.bool))
    _assert_same(_outputs(reference, padded_batch), _outputs(upstream, padded_batch))


def test_closed_sublayers_no_heads_and_one_channel(tiny_ckpts, padded_batch):
    upstream = load_upstream(tiny_ckpts["wav2vec2_ln"]).eval()
    gates = upstream.attach_gates()
    _soften(gates, seed=1)
    closed = torch.zeros(1, dtype=torch.bool)
    gates.attention["0"].set_keep(closed)  # whole attention sublayer of layer 0
    gates.ffn["1"].set_keep(closed)  # whole FFN sublayer of layer 1
    gates.heads["1"].set_keep(torch.zeros(4, dtype=torch.bool))  # every head of layer 1, sublayer kept
    one = torch.zeros(64, dtype=torch.bool)
    one[5] = True
    gates.conv_channels["3"].set_keep(one)
    gated = _outputs(upstream, padded_batch)
    arch = upstream.shrink()
    assert arch.attention == (False, True) and arch.ffn == (True, False)
    assert arch.heads == (0, 0) and arch.ffn_units[1] == 0 and arch.conv_channels[3] == 1
    _assert_same(gated, _outputs(upstream, padded_batch))


@pytest.mark.parametrize("variant", ["wavlm", "wavlm_ln"])
def test_wavlm_layer_without_attention_keeps_the_shared_position_bias(tiny_ckpts, padded_batch, tmp_path, variant):
    """Layer 0 owns the relative position bias table; its attention goes, layer 1 still reads its
    kept heads' (1 and 3) rows of the bias and slices of its input for the gate."""
    upstream = load_upstream(tiny_ckpts[variant]).eval()
    gates = upstream.attach_gates()
    _soften(gates, seed=2)
    gates.attention["0"].set_keep(torch.zeros(1, dtype=torch.bool))
    gates.heads["1"].set_keep(torch.tensor([False, True, False, True]))
    gated = _outputs(upstream, padded_batch)
    arch = upstream.shrink()
    assert arch.attention == (False, True) and arch.head_index == ((), (1, 3))
    model = upstream.model
    assert model.encoder.layers[0].self_attn.relative_attention_bias.weight.shape == (16, 4)
    assert model.encoder.layers[0].self_attn.grep_linear is None
    assert model.encoder.layers[1].self_attn.grep_a.shape == (1, 2, 1, 1)
    _assert_same(gated, _outputs(upstream, padded_batch))
    upstream.save(tmp_path / "shrunk.safetensors")
    loaded = load_upstream(tmp_path / "shrunk.safetensors").eval()
    assert loaded.arch == arch
    _assert_same(gated, _outputs(loaded, padded_batch))
    # pruned again, head numbers still refer to the dense model's heads
    gates = loaded.attach_gates()
    gates.heads["1"].set_keep(torch.tensor([False, True]))
    assert loaded.shrink().head_index == ((), (3,))


@pytest.mark.parametrize("variant", ["wav2vec2", "hubert", "wavlm"])
def test_save_load_round_trip(tiny_ckpts, padded_batch, tmp_path, variant):
    upstream = load_upstream(tiny_ckpts[variant]).eval()
    _soften(upstream.attach_gates(), seed=3)
    arch = upstream.shrink()
    path = tmp_path / "shrunk.safetensors"
    upstream.save(path)
    assert not list(tmp_path.glob("*.tmp"))
    loaded = load_upstream(path).eval()
    assert loaded.arch == arch
    _assert_same(_outputs(upstream, padded_batch), _outputs(loaded, padded_batch), tol=0.0)
    # a shrunk model can be gated and shrunk again
    loaded.attach_gates()
    again = loaded.shrink()
    assert again.conv_channels == arch.conv_channels


def test_shrunk_model_trains(tiny_ckpts, padded_batch):
    upstream = load_upstream(tiny_ckpts["hubert"])
    _soften(upstream.attach_gates(), seed=5)
    upstream.shrink()
    upstream.train()
    hs, _ = upstream(*padded_batch)
    hs[-1].pow(2).mean().backward()
    assert upstream.model.encoder.layers[0].fc1.weight.grad is not None


def test_wavlm_gates_learn_through_the_relative_position_bias(tiny_ckpts, padded_batch):
    upstream = load_upstream(tiny_ckpts["wavlm"])
    gates = upstream.attach_gates(init_drop_rate=0.3)
    hs, _ = upstream(*padded_batch)
    (hs[-1].pow(2).mean() + gates.expected_cost(1.0).macs * 1e-9).backward()
    layer0 = upstream.model.encoder.layers[0].self_attn
    for param in (layer0.relative_attention_bias.weight, layer0.grep_a, layer0.grep_linear.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    for kind in ("heads", "attention", "ffn_units", "ffn", "conv_channels"):
        assert all(g.log_alpha.grad is not None and torch.isfinite(g.log_alpha.grad).all() for g in getattr(gates, kind).values())
