"""SLU in ESPnet: intent head + slurp_entity decoding, trained with pruning, shrunk, decoded, scored (tiny, CPU)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from espnet_prune.data.datadir import Utterance, write_data_dir
from espnet_prune.data.slurp import Entity, SluTarget, format_slu_target
from espnet_prune.pruning.presets import make_checkpoint

# (intent, entities, transcript); the test set's last intent never occurs in training
TRAIN = [
    ("alarm_set", [Entity("time", "five am")], "wake me up at five am"),
    ("weather_query", [Entity("place_name", "paris")], "weather in paris"),
    ("music_play", [], "play music"),
] * 2
TEST = [
    ("alarm_set", [Entity("time", "five am")], "wake me up at five am"),
    ("weather_query", [Entity("place_name", "paris")], "weather in paris"),
    ("email_sendemail", [Entity("person", "bob")], "email bob"),
]


def _data_dir(root: Path, name: str, rows: list, offset: int) -> Path:
    """A prep_slurp-style data directory of tone + noise utterances (0.6-1.1 s)."""
    rng = np.random.default_rng(offset)
    (root / "wav").mkdir(exist_ok=True)
    utterances = []
    for i, (intent, entities, transcript) in enumerate(rows):
        n = 9600 + 1600 * (i % 4)
        t = np.arange(n) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (200 + 50 * (offset + i)) * t) + 0.05 * rng.standard_normal(n)
        path = root / "wav" / f"{name}{i}.wav"
        soundfile.write(path, wav.astype(np.float32), 16000)
        extra = {
            "intent": intent,
            "transcript": transcript,
            "entities": json.dumps([{"type": e.type, "filler": e.filler} for e in entities]),
            "slurp_id": str(100 + offset + i),
            "recording": f"audio-{offset + i}.flac",
        }
        target = format_slu_target(SluTarget(intent, tuple(entities), transcript))
        utterances.append(Utterance(f"spk{name}-{i:02d}", f"spk{name}", str(path), target, extra))
    write_data_dir(root / name, utterances)
    return root / name


def _config(root: Path, upstream: Path) -> Path:
    conf = {
        "frontend": "s3prl_prune",
        "frontend_conf": {
            "upstream_ckpt": str(upstream),
            "multilayer_feature": True,
            "pruning_conf": {"method": "mac", "target": 0.5, "warmup_steps": 2, "macs_seconds": 1.0, "reg_lr": 0.05},
        },
        "model": "espnet_prune_slu",
        "model_conf": {"ctc_weight": 0.3, "intent_weight": 0.5},
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
        "use_tensorboard": False,
    }
    path = root / "train.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _train(paths: dict[str, Path], extra: list[str]) -> str:
    """Run slu_train in this process (a subprocess would spend ~20 s importing ESPnet again);
    returns its log."""
    from espnet_prune.bin import slu_train

    cmd = ["--config", str(paths["config"]), "--ngpu", "0", "--num_workers", "0", "--token_type", "word",
           "--token_list", str(paths["tokens"]), "--intent_list", str(paths["intents"]), "--use_preprocessor", "true"]
    # the test set validates: its unseen intent goes through ESPnet's loader as <unk>
    for split, data in (("train", paths["train"]), ("valid", paths["test"])):
        cmd += [f"--{split}_data_path_and_name_and_type", f"{data}/wav.scp,speech,sound",
                f"--{split}_data_path_and_name_and_type", f"{data}/text,text,text",
                f"--{split}_data_path_and_name_and_type", f"{data}/intent,intent,text"]
    root, handler = logging.getLogger(), _Collect()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # ESPnet's basicConfig does nothing under pytest, whose handlers are there
    try:
        slu_train.main(cmd + extra)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return "\n".join(handler.lines)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("slu")
    upstream = root / "tiny.pt"
    torch.save(make_checkpoint("wav2vec2", "tiny", seed=0), upstream)
    paths = {"root": root, "upstream": upstream, "train": _data_dir(root, "train", TRAIN, 0),
             "test": _data_dir(root, "test", TEST, 20), "config": _config(root, upstream)}
    words = sorted({w for line in (paths["train"] / "text").read_text().splitlines() for w in line.split()[1:]})
    paths["tokens"] = root / "tokens.txt"
    paths["tokens"].write_text("\n".join(["<blank>", "<unk>", *words, "<sos/eos>"]) + "\n")
    paths["intents"] = root / "intent_list"
    paths["intents"].write_text("\n".join(sorted({row[0] for row in TRAIN})) + "\n")
    stats, exp = root / "stats", root / "exp"
    shapes = []
    for split, data in (("train", paths["train"]), ("valid", paths["test"])):
        shapes += [f"--{split}_shape_file", f"{data}/wav.scp", f"--{split}_shape_file", f"{data}/text"]
    _train(paths, ["--collect_stats", "true", "--output_dir", str(stats), "--batch_type", "unsorted", *shapes])
    shapes = []
    for split in ("train", "valid"):
        shapes += [f"--{split}_shape_file", f"{stats}/{split}/speech_shape",
                   f"--{split}_shape_file", f"{stats}/{split}/text_shape"]
    paths["log"] = _train(paths, ["--output_dir", str(exp), "--fold_length", "16000", "--fold_length", "20", *shapes])
    paths["exp"] = exp
    return paths


def test_training_logs_intent_and_pruning_stats(trained):
    log = trained["log"]
    for key in ("loss_intent", "acc_intent", "sparsity_macs", "loss_pruning", "loss_att"):
        assert f"{key}=" in log, key
    assert "intent 'email_sendemail' (utterance spktest-02) is not in the intent list" in log
    conf = yaml.safe_load((trained["exp"] / "config.yaml").read_text())
    # the intent list travels in the config (like the token list): <unk> first, then the file's intents
    assert conf["model_conf"]["intent_list"] == ["<unk>", "alarm_set", "music_play", "weather_query"]
    state = torch.load(trained["exp"] / "1epoch.pth", map_location="cpu")
    assert state["intent_classifier.weight"].shape == (4, 32)
    assert int(state["frontend.objective.step"]) > 0


@pytest.fixture(scope="module")
def decoded(trained) -> dict[str, Path]:
    """The trained model shrunk (slu_shrink), decoded on the test set and scored with score_slurp."""
    from espnet2.bin.asr_inference import Speech2Text

    from espnet_prune.bin import score_slurp, slu_inference, slu_shrink

    root, exp = trained["root"], trained["exp"]
    shrunk = root / "exp_shrunk"
    slu_shrink.main(["--config", str(exp / "config.yaml"), "--model_file", str(exp / "1epoch.pth"),
                     "--out_dir", str(shrunk)])
    s2t = Speech2Text(asr_train_config=shrunk / "config.yaml", asr_model_file=shrunk / "model.pth",
                      device="cpu", beam_size=2, ctc_weight=0.3, maxlenratio=0.5, nbest=1)
    decode_config = root / "decode.yaml"
    decode_config.write_text(yaml.safe_dump({"beam_size": 2, "ctc_weight": 0.3, "maxlenratio": 0.5, "nbest": 1}))
    out = root / "decode_test"
    assert slu_inference.main(["--asr_train_config", str(shrunk / "config.yaml"), "--asr_model_file", str(shrunk / "model.pth"),
                               "--decode_config", str(decode_config), "--data_dir", str(trained["test"]),
                               "--output_dir", str(out), "--nj", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    score = root / "score_slu"
    status = score_slurp.main(["--gold_dir", str(trained["test"]), "--predictions", str(out / "predictions.jsonl"),
                               "--out", str(score), "--train_intents", str(trained["train"] / "intent")])
    assert status == 0
    # the decode dir's `text` is what score_slurp --hyp reads (ESPnet slurp_entity's route)
    status = score_slurp.main(["--gold_dir", str(trained["test"]), "--hyp", str(out / "text"),
                               "--out", str(root / "score_hyp")])
    assert status == 0
    return {"out": out, "summary": summary, "score": score, "s2t": s2t, "score_hyp": root / "score_hyp"}


def test_inference_writes_slurp_predictions_that_score(trained, decoded):
    out, summary = decoded["out"], decoded["summary"]
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["file"] for r in rows] == ["audio-20.flac", "audio-21.flac", "audio-22.flac"]
    assert [r["slurp_id"] for r in rows] == [120, 121, 122]
    for row in rows:
        # the head always gives a known intent; the decoder's is recorded beside it
        assert row["intent"] in {"alarm_set", "music_play", "weather_query"}
        assert row["intent"] == f"{row['scenario']}_{row['action']}"
        assert all(set(e) == {"type", "filler"} for e in row["entities"])
        assert isinstance(row["decoder_intent"], str) and isinstance(row["transcript"], str)
    text = (out / "text").read_text().splitlines()
    assert [line.split()[0] for line in text] == [r["utt_id"] for r in rows]
    assert not list(out.glob(".*tmp*"))
    assert summary["utterances"] == 3 and summary["no_intent"] == [] and summary["too_short"] == []
    assert summary["unseen_gold_intents"] == {"email_sendemail": 1}
    metrics = json.loads((decoded["score"] / "metrics.json").read_text())
    result = (decoded["score"] / "result.txt").read_text()
    assert "Gold intents unseen in training: 1 recordings: email_sendemail (1)" in result
    assert "3 of 3 recordings scored" in result and "intent" in json.dumps(metrics)
    assert "3 of 3 recordings scored" in (decoded["score_hyp"] / "result.txt").read_text()


def test_recipe_decoding_writes_the_head_intents_and_scores_as_slu_inference(trained, decoded, tmp_path):
    """asr_decode (the recipes' decoding, and slu_inference's) on an SLU model: `intent` holds the
    intent head's predictions, and score_slurp --hyp --hyp_intent scores them as slu_inference's
    predictions."""
    from espnet_prune.bin import asr_decode, score_slurp

    shrunk, out = trained["root"] / "exp_shrunk", tmp_path / "decode"
    conf = {"beam_size": 2, "ctc_weight": 0.3, "maxlenratio": 0.5, "nbest": 1}
    summary = asr_decode.decode_data_dir(shrunk / "config.yaml", shrunk / "model.pth", trained["test"], out, conf, nj=1)
    assert summary["utterances"] == 3 and 0 < summary["upstream_rtf"] < summary["rtf"]
    rows = {json.loads(line)["utt_id"]: json.loads(line) for line in (decoded["out"] / "predictions.jsonl").read_text().splitlines()}
    intents = dict(line.split() for line in (out / "intent").read_text().splitlines())
    assert intents == {utt: row["intent"] for utt, row in rows.items()}
    assert (out / "text").read_text() == (decoded["out"] / "text").read_text()
    assert score_slurp.main(["--gold_dir", str(trained["test"]), "--hyp", str(out / "text"), "--hyp_intent",
                             str(out / "intent"), "--out", str(tmp_path / "score")]) == 0
    by_hyp = json.loads((tmp_path / "score" / "metrics.json").read_text())
    by_predictions = json.loads((decoded["score"] / "metrics.json").read_text())
    for key in ("intent_accuracy", "scenario_accuracy", "slu_f1"):
        assert by_hyp[key] == by_predictions[key], key
    (tmp_path / "short_intent").write_text("".join(f"{u} {i}\n" for u, i in list(intents.items())[:2]))
    assert score_slurp.main(["--gold_dir", str(trained["test"]), "--hyp", str(out / "text"), "--hyp_intent",
                             str(tmp_path / "short_intent"), "--out", str(tmp_path / "score2")]) == 1
    assert not (tmp_path / "score2").exists()


def test_shrunk_slu_model_keeps_the_intent_head(trained, decoded):
    from espnet_prune.tasks.slu import SLUPruneTask

    model = decoded["s2t"].asr_model
    assert model.frontend.objective is None and model.frontend.upstream.gates is None
    gated, _ = SLUPruneTask.build_model_from_file(trained["exp"] / "config.yaml", trained["exp"] / "1epoch.pth", "cpu")
    assert torch.equal(model.intent_classifier.weight, gated.intent_classifier.weight)


def test_batch_of_unknown_intents_trains_the_rest_only(trained):
    from espnet_prune.tasks.slu import SLUPruneTask

    model, _ = SLUPruneTask.build_model_from_file(trained["exp"] / "config.yaml", trained["exp"] / "1epoch.pth", "cpu")
    speech, lengths = torch.randn(2, 9600), torch.tensor([9600, 8000])
    text, text_lengths = torch.tensor([[3, 4], [5, -1]]), torch.tensor([2, 1])
    loss, stats, _ = model(speech, lengths, text, text_lengths, intent=torch.tensor([[0], [0]]),
                           intent_lengths=torch.tensor([1, 1]))
    assert stats["loss_intent"] is None and stats["acc_intent"] is None and torch.isfinite(loss)
    loss.backward()
    assert model.intent_classifier.weight.grad.abs().sum() == 0
    _, stats, _ = model(speech, lengths, text, text_lengths, intent=torch.tensor([[0], [2]]),
                        intent_lengths=torch.tensor([1, 1]))
    assert stats["loss_intent"] > 0 and stats["acc_intent"] in (0.0, 1.0)  # the one known utterance
    with pytest.raises(ValueError, match="intent,intent,text"):
        model(speech, lengths, text, text_lengths)


def test_unknown_model_conf_key_and_missing_intent_list_are_errors(trained, tmp_path):
    from espnet_prune.slu.intents import IntentListError
    from espnet_prune.tasks.slu import SLUPruneTask

    conf = yaml.safe_load((trained["exp"] / "config.yaml").read_text())
    conf["model_conf"]["bogus"] = 1
    (tmp_path / "bogus.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(TypeError, match="bogus"):
        SLUPruneTask.build_model_from_file(tmp_path / "bogus.yaml", None, "cpu")
    del conf["model_conf"]["bogus"], conf["model_conf"]["intent_list"]
    conf["intent_list"] = None
    (tmp_path / "none.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(IntentListError, match="--intent_list"):
        SLUPruneTask.build_model_from_file(tmp_path / "none.yaml", None, "cpu")


# ---------------------------------------------------------------------------------------------
# Pieces, without training


def test_attention_pooling_ignores_padding():
    from espnet_prune.slu.model import AttentionPooling

    torch.manual_seed(0)
    pool = AttentionPooling(8)
    xs = torch.randn(2, 5, 8)
    lengths = torch.tensor([5, 3])
    pooled = pool(xs, lengths)
    assert pooled.shape == (2, 8)
    assert torch.allclose(pooled[1], pool(xs[1:, :3], lengths[1:])[0], atol=1e-6)
    noisy = xs.clone()
    noisy[1, 3:] = 1e3
    assert torch.allclose(pool(noisy, lengths)[1], pooled[1], atol=1e-6)


def test_intent_preprocessor_maps_unseen_intents_to_unk_once_logged(caplog):
    from espnet_prune.slu.intents import IntentPreprocessor

    pre = IntentPreprocessor(None, ["alarm_set", "weather_query"])
    assert pre("u1", {"intent": "weather_query"})["intent"].tolist() == [2]
    with caplog.at_level(logging.WARNING):
        for uid in ("u2", "u3"):
            assert pre(uid, {"intent": "email_sendemail"})["intent"].tolist() == [0]
        assert pre("u4", {"intent": "<unk>"})["intent"].tolist() == [0]
    assert pre.unseen == {"email_sendemail": 2, "<unk>": 1}
    assert sum("email_sendemail" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    "lines, message",
    [(["alarm_set", "alarm_set"], "twice"), (["utt1 alarm_set"], "one intent per line"), ([], "no intent")],
)
def test_bad_intent_lists_are_errors(tmp_path, lines, message):
    from espnet_prune.slu.intents import IntentListError, read_intent_list

    path = tmp_path / "intents"
    path.write_text("".join(f"{line}\n" for line in lines))
    with pytest.raises(IntentListError, match=message):
        read_intent_list(path)


def test_predictions_from_malformed_hypotheses_never_crash():
    from espnet_prune.bin.slu_inference import DecodeSummary, predict_utterance

    summary = DecodeSummary()
    cases = {
        # head intent wins over the decoder's; the entity without FILL is dropped and counted
        "a": ("alarm_set SEP time five am SEP place_name FILL paris SEP wake me", "weather_query"),
        "b": ("wake me up", None),  # no SEP: no intent from the decoder, and no head output
        "c": ("SEP FILL FILL SEP SEP", None),
        "d": ("", None),
    }
    predictions = {utt: predict_utterance(utt, f"{utt}.flac", None, hyp, head) for utt, (hyp, head) in cases.items()}
    for prediction in predictions.values():
        summary.add(prediction)
    a = predictions["a"]
    assert (a.intent, a.decoder_intent, a.entities, a.dropped_entities) == (
        "weather_query", "alarm_set", (("place_name", "paris"),), 1
    )
    assert a.to_json()["scenario"] == "weather" and a.to_json()["action"] == "query"
    assert predictions["b"].intent is None and predictions["b"].transcript == "wake me up"
    assert predictions["b"].to_json()["scenario"] == "" and "slurp_id" not in predictions["b"].to_json()
    assert predictions["c"].entities == () and predictions["c"].dropped_entities == 2
    assert summary.no_intent == ["b", "c", "d"] and summary.malformed_entity_tags == 3
    assert summary.head_decoder_differ == 1 and summary.decoder_no_intent == 3
