"""Mixed precision: under autocast the gates, the expected cost and the Lagrangian stay in fp32."""

from pathlib import Path

import pytest
import torch
import yaml

from espnet_prune.pruning import load_upstream
from espnet_prune.pruning.objective import PruningObjective, param_groups


def _step(ckpt: str, batch: tuple[torch.Tensor, torch.Tensor], autocast: bool):
    torch.manual_seed(0)
    upstream = load_upstream(ckpt)
    gates = upstream.attach_gates()
    objective = PruningObjective(gates, method="mac", target=0.5, warmup_steps=0, macs_seconds=1.0)
    model = torch.nn.ModuleDict({"upstream": upstream, "objective": objective}).train()
    optimizer = torch.optim.AdamW(param_groups(model, lr=1e-3, reg_lr=0.05))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        hs, _ = upstream(*batch)
        task = hs[-1].float().pow(2).mean()  # a stand-in task loss on the last layer
        reg, stats = objective()
    optimizer.zero_grad()
    (task + reg).backward()
    grads = {name: p.grad for name, p in gates.named_parameters()}
    optimizer.step()
    return hs[-1], task, reg, stats, grads


@pytest.mark.parametrize("variant", ["wav2vec2", "hubert"])
def test_one_bf16_autocast_step_keeps_the_pruning_terms_in_fp32(tiny_ckpts, padded_batch, variant):
    out32, task32, reg32, stats32, _ = _step(tiny_ckpts[variant], padded_batch, autocast=False)
    out16, task16, reg16, stats16, grads = _step(tiny_ckpts[variant], padded_batch, autocast=True)
    assert out16.dtype == torch.bfloat16  # the layers did run in bf16
    assert torch.isfinite(task16.detach()) and torch.isfinite(reg16.detach())
    assert reg16.dtype == torch.float32 and float(stats16["sparsity_macs"]) == float(stats32["sparsity_macs"])
    assert float(reg16.detach()) == pytest.approx(float(reg32.detach()), rel=1e-6)  # the cost does not see the activations
    assert float(task16.detach()) == pytest.approx(float(task32.detach()), rel=0.05)
    assert grads and all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads.values())


def test_recipes_with_amp_put_the_upstream_under_it_too():
    """ESPnet's model runs its frontend outside autocast unless ``autocast_frontend``: with ``use_amp``
    alone the upstream (nearly all of the compute) stayed fp32 on a GPU (benchmarks/RESULTS_device_check.md)."""
    configs = sorted(Path(__file__).resolve().parents[1].glob("egs2/*/*/conf/train_*.yaml"))
    amp = [path for path in configs if yaml.safe_load(path.read_text()).get("use_amp")]
    assert len(amp) >= 4
    for path in amp:
        assert yaml.safe_load(path.read_text())["model_conf"].get("autocast_frontend") is True, path
