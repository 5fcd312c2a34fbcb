import pytest
import torch

from espnet_prune.pruning.gates import HardConcreteGate


def test_expected_l0_matches_monte_carlo():
    torch.manual_seed(0)
    gate = HardConcreteGate(8)
    with torch.no_grad():
        gate.log_alpha.copy_(torch.linspace(-3, 3, 8))
    samples = torch.stack([gate.sample() for _ in range(20000)])
    assert samples.min() >= 0 and samples.max() <= 1
    assert ((samples == 0).float().mean() > 0.01) and ((samples == 1).float().mean() > 0.01)
    empirical = (samples > 0).float().mean(0)
    assert torch.allclose(empirical, gate.prob_nonzero().detach(), atol=0.015)


def test_sample_and_expected_l0_are_differentiable():
    gate = HardConcreteGate(5, init_drop_rate=0.5)
    (gate.sample().sum() + gate.prob_nonzero().sum()).backward()
    assert gate.log_alpha.grad is not None and gate.log_alpha.grad.abs().sum() > 0


def test_deterministic_mask_keeps_expected_number():
    gate = HardConcreteGate(10)
    with torch.no_grad():
        gate.log_alpha.copy_(torch.tensor([5.0] * 6 + [-5.0] * 4))
    gate.eval()
    mask = gate()
    assert int((mask > 0).sum()) == round(float(gate.prob_nonzero().sum())) == 6
    assert (mask[6:] == 0).all() and (mask[:6] > 0.9).all()
    assert torch.equal(mask, gate())  # deterministic


def test_min_keep_holds_even_when_all_gates_close():
    gate = HardConcreteGate(4, min_keep=1)
    gate.set_keep(torch.zeros(4, dtype=torch.bool))
    assert int((gate.deterministic_mask() > 0).sum()) == 1


def test_initial_drop_rate_sets_open_probability():
    assert HardConcreteGate(100, init_drop_rate=0.01).prob_nonzero().mean() > 0.99
    assert HardConcreteGate(100, init_drop_rate=0.9).prob_nonzero().mean() < 0.5


@pytest.mark.parametrize("kwargs", [dict(num_units=0), dict(num_units=3, init_drop_rate=1.0), dict(num_units=3, min_keep=4)])
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        HardConcreteGate(**kwargs)
