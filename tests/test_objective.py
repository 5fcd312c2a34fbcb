import json
import os
import subprocess
import sys

import pytest
import torch

from espnet_prune.pruning import UpstreamGates, read_checkpoint
from espnet_prune.pruning.objective import (
    METHODS,
    PruningObjective,
    format_summary,
    gate_conf_for,
    param_groups,
    pruning_summary,
)


@pytest.fixture
def arch(tiny_ckpts):
    return read_checkpoint(tiny_ckpts["wav2vec2"]).arch


def objective_for(arch, method, **kwargs):
    return PruningObjective(UpstreamGates(arch, **gate_conf_for(method)), method=method, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="l1"), "unknown pruning method"),
        (dict(method="mac", target=1.0), r"must be in \[0, 1\)"),
        (dict(method="mac", target=-0.1), r"must be in \[0, 1\)"),
        (dict(method="trf_only", target=0.7), "out of reach"),  # CNN and positional conv stay
        (dict(method="trf_only", targets={"macs": 0.3}), "constrains"),
        (dict(method="sep_size", targets={"transformer_params": 0.99}), "out of reach"),
        (dict(method="mac", damping=-1.0), "damping must be >= 0"),
    ],
)
def test_configuration_errors(arch, kwargs, message):
    with pytest.raises(ValueError, match=message):
        objective_for(arch, **kwargs)


def test_trf_only_gates_no_conv_and_refuses_conv_gates(arch):
    assert gate_conf_for("trf_only")["conv_channels"] is False
    assert len(UpstreamGates(arch, **gate_conf_for("trf_only")).conv_channels) == 0
    with pytest.raises(ValueError, match="does not prune the CNN"):
        gate_conf_for("trf_only", conv_channels=True)


def test_target_warms_up_linearly_and_lambdas_ascend(arch):
    objective = objective_for(arch, "size_mac", target=0.4, targets={"macs": 0.6}, warmup_steps=4)
    objective.train()
    seen = []
    for _ in range(6):
        loss, stats = objective()
        seen.append((float(stats["target_params"]), float(stats["target_macs"])))
    assert seen[0] == (0.0, 0.0) and seen[2] == pytest.approx((0.2, 0.3)) and seen[5] == pytest.approx((0.4, 0.6))
    objective.eval()
    objective()
    assert int(objective.step) == 6  # eval calls do not advance the warm-up
    with torch.no_grad():
        objective.lambdas.fill_(1.0)
    loss, stats = objective()
    loss.backward()
    gap = stats["sparsity_params"] - stats["target_params"]
    # d loss / d lambda1 = gap; the hook negates it so that a descent step is an ascent step
    assert float(objective.lambdas.grad[0, 0]) == pytest.approx(-float(gap))
    assert float(objective.lambdas.grad[0, 1]) == pytest.approx(-float(gap) ** 2)
    assert {"remaining_conv_channels", "remaining_heads", "remaining_ffn_units", "remaining_attention", "remaining_ffn"} <= set(stats)


@pytest.mark.parametrize("damping", [0.0, 100.0])
def test_damping_is_a_fixed_quadratic_penalty(arch, damping):
    """With the lambdas at zero only the damping term is left: damping * gap^2, pulling s to t."""
    objective = objective_for(arch, "mac", target=0.5, warmup_steps=0, damping=damping)
    objective.train()
    loss, stats = objective()
    gap = float(stats["sparsity_macs"] - stats["target_macs"])
    assert float(loss) == pytest.approx(damping * gap * gap)
    loss.backward()
    assert float(objective.lambdas.grad.abs().max()) == pytest.approx(abs(gap), rel=1e-5)  # lambdas learn as before


def test_damping_after_warmup_waits_for_the_final_target(arch):
    """With ``damping_after_warmup`` the penalty is off while the target rises, on once it is final."""
    objective = objective_for(arch, "mac", target=0.5, warmup_steps=2, damping=100.0, damping_after_warmup=True)
    objective.train()
    for step in range(4):
        loss, stats = objective()
        gap = float(stats["sparsity_macs"] - stats["target_macs"])
        assert gap != 0.0
        assert float(loss) == pytest.approx(100.0 * gap * gap if step >= 2 else 0.0), step


def test_param_groups_split_weights_from_gates_and_lambdas(tiny_ckpts):
    from espnet_prune.pruning import load_upstream

    upstream = load_upstream(tiny_ckpts["hubert"])
    gates = upstream.attach_gates()
    model = torch.nn.ModuleDict({"upstream": upstream, "objective": PruningObjective(gates, method="size")})
    weights, pruning = param_groups(model, lr=1e-3, reg_lr=0.05, weight_decay=0.01)
    assert pruning["lr"] == 0.05 and pruning["weight_decay"] == 0.0 and weights["weight_decay"] == 0.01
    gate_params = {id(g.log_alpha) for g in gates.modules() if hasattr(g, "log_alpha")}
    assert {id(p) for p in pruning["params"]} == gate_params | {id(model["objective"].lambdas)}
    assert len(weights["params"]) + len(pruning["params"]) == len(list(model.parameters()))


def test_pruning_summary_table(arch):
    pruned = arch.__class__(**{**arch.to_dict(), "heads": (2, 0), "attention": (True, False), "conv_channels": (8,) * 7})
    summary = pruning_summary(arch, pruned, seconds=1.0)
    assert summary["conv"][0] == {"layer": 0, "channels": 8, "of": 64}
    assert summary["transformer"][1]["attention"] is False
    text = format_summary(summary)
    assert "removed" in text and "8 / 64" in text


@pytest.fixture(scope="module")
def selfcheck_results():
    """Run the CLI once per method, two single-threaded processes at a time (the machine has 2 cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    pending, results = sorted(METHODS), {}
    while pending:
        batch, pending = pending[:2], pending[2:]
        procs = {
            m: subprocess.Popen(
                [sys.executable, "-m", "espnet_prune.bin.prune_selfcheck", "--method", m, "--target", "0.4", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )
            for m in batch
        }
        for m, proc in procs.items():
            out, err = proc.communicate(timeout=900)
            assert proc.returncode == 0, err[-2000:]
            results[m] = json.loads(out.strip().splitlines()[-1])
    return results


@pytest.mark.parametrize("method", sorted(METHODS))
def test_selfcheck_meets_targets_while_learning(selfcheck_results, method):
    result = selfcheck_results[method]
    assert result["method"] == method
    # the controller holds the expected cost; the budget's selection (every gate kind on, sublayers
    # too) lands every counted cost, both of a two-cost method
    for name, target in result["targets"].items():
        assert abs(result["expected"][name] - target) <= 0.02, result
        assert abs(result["counted"][name] - target) <= 0.01, result
    assert result["task_loss"]["last"] < 0.5 * result["task_loss"]["first"]


def test_selfcheck_cnn_shares(selfcheck_results):
    assert selfcheck_results["trf_only"]["cnn_macs_removed"] == 0.0
    assert selfcheck_results["mac"]["cnn_macs_removed"] > selfcheck_results["size"]["cnn_macs_removed"]
