"""Layer-wise distillation, pruning or not: the loss, the layer maps, the frozen and unsaved teacher."""

import math

import pytest
import torch

from espnet_prune.frontend.s3prl_prune import S3prlPruneFrontend
from espnet_prune.pruning import load_upstream
from espnet_prune.pruning.distill import LOSSES, LayerDistillation, distill_weight, frame_loss


def test_frame_losses():
    a = torch.tensor([[[1.0, 2.0], [0.0, 1.0]]])
    b = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert frame_loss(a, b, "l1").tolist() == [[1.0, 0.0]]
    assert frame_loss(a, b, "l2").tolist() == [[2.0, 0.0]]
    same = -math.log(1 / (1 + math.exp(-1.0)))  # -log sigmoid(cos = 1)
    assert frame_loss(a, b, "cosine")[0, 1] == pytest.approx(same)
    assert frame_loss(a, b, "l1_cosine")[0, 1] == pytest.approx(same)
    with pytest.raises(ValueError, match="choose from"):
        frame_loss(a, b, "kl")


def _identity(distill: LayerDistillation) -> None:
    with torch.no_grad():
        for projection in distill.projections:
            projection.weight.copy_(torch.eye(projection.weight.size(0)))
            projection.bias.zero_()


def test_dynamic_matching_finds_the_same_layer_and_the_loss_is_then_zero(tiny_ckpts, padded_batch):
    student, teacher = load_upstream(tiny_ckpts["hubert"]).eval(), load_upstream(tiny_ckpts["hubert"])
    distill = LayerDistillation(teacher, student.num_layers, 96, 96, layers="dynamic", teacher_layers=[2, 1], loss="l1")
    _identity(distill)
    wavs, lengths = padded_batch
    with torch.no_grad():
        hs, hs_lens = student(wavs, lengths)
    loss, chosen = distill(hs, distill.teacher_states(wavs, lengths), hs_lens[0])
    assert chosen == [2, 1] and float(loss.detach()) == pytest.approx(0.0, abs=1e-6)


def test_fixed_pairs_train_the_projections_not_the_teacher(tiny_ckpts, padded_batch):
    student, teacher = load_upstream(tiny_ckpts["wav2vec2"]), load_upstream(tiny_ckpts["wav2vec2"])
    distill = LayerDistillation(teacher, student.num_layers, 96, 96, layers=[[1, 2], [2, 2]])
    wavs, lengths = padded_batch
    hs, hs_lens = student(wavs, lengths)
    loss, chosen = distill(hs, distill.teacher_states(wavs, lengths), hs_lens[0])
    loss.backward()
    assert chosen == [1, 2] and float(loss) > 0
    assert all(p.grad is not None for p in distill.projections.parameters())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not any(k.startswith("teacher") for k in distill.state_dict())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(layers=[[1, 9]]), r"teacher 9\) does not map: the student has hidden states 0..2 of width 64, the teacher 0..2 of width 96"),
        (dict(layers=[]), "no \\[student, teacher\\] pair"),
        (dict(layers="all"), "'dynamic' or"),
        (dict(loss="mse"), "choose from"),
    ],
)
def test_bad_distillation_settings_are_errors(tiny_ckpts, kwargs, message):
    teacher = load_upstream(tiny_ckpts["wav2vec2"])
    with pytest.raises(ValueError, match=message):
        LayerDistillation(teacher, 3, 64, 96, **kwargs)
    assert set(LOSSES) == {"l1_cosine", "l1", "l2", "cosine"}


PRUNING = {"method": "mac", "target": 0.3, "warmup_steps": 2, "macs_seconds": 1.0}


def test_frontend_adds_the_distillation_loss_in_training_only(tiny_ckpts, padded_batch):
    distill = {"layers": [[2, 2]], "weight": 0.5, "loss": "l2"}
    frontend = S3prlPruneFrontend(tiny_ckpts["wav2vec2"], pruning_conf=PRUNING, distill_conf=distill).train()
    wavs, lengths = padded_batch
    frontend(wavs, lengths)
    loss, stats = frontend.auxiliary_loss()
    assert "loss_distill" in stats and float(stats["loss_distill"]) > 0
    assert float(loss) == pytest.approx(float(stats["loss_pruning"]) + 0.5 * float(stats["loss_distill"]), rel=1e-5)
    assert not any("teacher" in k for k in frontend.state_dict())
    assert any(k.startswith("distill.projections") for k in frontend.state_dict())
    frontend.eval()
    frontend(wavs, lengths)
    assert "loss_distill" not in frontend.auxiliary_loss()[1]
    frontend.shrink()
    assert frontend.distill is None and not any(k.startswith("distill") for k in frontend.state_dict())
    with pytest.raises(ValueError, match="unknown distill_conf keys \\['temperature'\\]"):
        S3prlPruneFrontend(tiny_ckpts["wav2vec2"], pruning_conf=PRUNING, distill_conf={"temperature": 2.0})
    with pytest.raises(FileNotFoundError, match="distill_conf.teacher_ckpt"):
        S3prlPruneFrontend(tiny_ckpts["wav2vec2"], distill_conf={"teacher_ckpt": "/nowhere.pt"})
    with pytest.raises(ValueError, match="pruning_conf.distill is now frontend_conf.distill_conf"):
        S3prlPruneFrontend(tiny_ckpts["wav2vec2"], pruning_conf={**PRUNING, "distill": distill})


def test_an_unpruned_model_can_have_a_teacher(tiny_ckpts, padded_batch):
    """The control of distillation while pruning: the same teacher, no gates."""
    frontend = S3prlPruneFrontend(tiny_ckpts["wav2vec2"], distill_conf={"layers": [[2, 2]], "weight": 2.0}).train()
    assert frontend.objective is None and frontend.upstream.gates is None
    wavs, lengths = padded_batch
    frontend(wavs, lengths)
    loss, stats = frontend.auxiliary_loss()
    assert set(stats) == {"loss_distill", "distill_weight"} and float(loss) == pytest.approx(2.0 * float(stats["loss_distill"]))
    loss.backward()
    assert frontend.upstream.model.encoder.layers[0].fc1.weight.grad is not None
    assert frontend.auxiliary_loss() is None  # one term per training forward
    assert S3prlPruneFrontend(tiny_ckpts["wav2vec2"]).train().auxiliary_loss() is None


def test_a_teacher_leaves_the_models_built_after_the_frontend_as_without_it(tiny_ckpts):
    """The teacher and its projections draw on a copy of the global RNG: what is initialised after
    the frontend (encoder, decoder, CTC) starts from the same weights with and without a teacher."""
    after = []
    for distill_conf in (None, {"layers": [[2, 2]]}):
        torch.manual_seed(3)
        S3prlPruneFrontend(tiny_ckpts["wav2vec2"], pruning_conf=PRUNING, distill_conf=distill_conf)
        after.append(torch.nn.Linear(8, 8).weight)
    assert torch.equal(after[0], after[1])


def test_weight_warms_up_and_decays_like_the_target(tiny_ckpts, padded_batch):
    schedule = dict(weight=2.0, warmup_steps=4, decay_steps=10, final_weight=0.5)
    assert [distill_weight(s, **schedule) for s in (0, 2, 4, 9, 14, 100)] == [0.0, 1.0, 2.0, 1.25, 0.5, 0.5]
    assert distill_weight(7, 2.0) == 2.0 and distill_weight(1, 2.0, warmup_steps=4) == 0.5
    with pytest.raises(ValueError, match="must be >= 0"):
        distill_weight(0, 1.0, decay_steps=-1)
    distill = {"layers": [[2, 2]], "loss": "l2", **schedule}
    frontend = S3prlPruneFrontend(tiny_ckpts["wav2vec2"], distill_conf=distill).train()
    wavs, lengths = padded_batch
    weights = []
    for _ in range(3):
        frontend(wavs, lengths)
        weights.append(float(frontend.auxiliary_loss()[1]["distill_weight"]))
    assert weights == [0.5, 1.0, 1.5]
    # the step is saved, so a resumed run goes on where it stopped
    resumed = S3prlPruneFrontend(tiny_ckpts["wav2vec2"], distill_conf=distill).train()
    resumed.load_state_dict(frontend.state_dict())
    resumed(wavs, lengths)
    assert float(resumed.auxiliary_loss()[1]["distill_weight"]) == 2.0
    with pytest.raises(ValueError, match="distill_conf: .*must be >= 0"):
        S3prlPruneFrontend(tiny_ckpts["wav2vec2"], distill_conf={**distill, "warmup_steps": -5})
