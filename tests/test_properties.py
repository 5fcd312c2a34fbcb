"""Property-based tests: the cost model against shrunk models, and the text formats of data prep.

Each property runs a few dozen random cases (seconds in all, single-threaded); hypothesis keeps
the failing case it finds small.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espnet_prune.data.datadir import DataDirError, Utterance, read_table, validate_data_dir, write_data_dir
from espnet_prune.data.errors import BadInputLog
from espnet_prune.data.librispeech import parse_transcript_line, read_transcripts
from espnet_prune.data.slurp import (
    SluTarget,
    SluTargetError,
    check_record,
    format_slu_target,
    parse_record,
    parse_slu_target,
)
from espnet_prune.pruning import (
    HardConcreteGate,
    UnitCounts,
    UpstreamArch,
    UpstreamGates,
    apply_arch_,
    build_model,
    shrink_upstream,
    upstream_cost,
)
from espnet_prune.pruning.checkpoint import SSLCheckpoint
from espnet_prune.pruning.presets import make_checkpoint

# Timing varies on a loaded machine; the properties do not. The tmp folders are made per example.
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---------------------------------------------------------------------------------------------
# Cost model: expected cost from gate probabilities against the counted cost of the shrunk model

# The tiny preset in the two extractor layouts (GroupNorm on the first conv / LayerNorm on every conv).
_VARIANTS = {"default": {}, "layer_norm": {"extractor_mode": "layer_norm", "layer_norm_first": True}}
_DENSE: dict[str, SSLCheckpoint] = {}


def _dense(variant: str) -> SSLCheckpoint:
    if variant not in _DENSE:
        state = make_checkpoint("wav2vec2", "tiny", seed=0, **_VARIANTS[variant])
        _DENSE[variant] = SSLCheckpoint("wav2vec2", state["task_cfg"], state["model_cfg"], state["model_weight"])
    return _DENSE[variant]


@st.composite
def pruned_archs(draw: st.DrawFn) -> UpstreamArch:
    """A tiny wav2vec2 architecture with random survivors per layer, as after an earlier pruning:
    conv layers keep at least one channel (the signal path), a layer may keep zero heads or FFN
    units, or lose a whole sublayer (then it has no heads / units either, as shrinking leaves it)."""
    dense = _dense(draw(st.sampled_from(sorted(_VARIANTS)))).arch
    attention = [draw(st.booleans()) for _ in dense.heads]
    ffn = [draw(st.booleans()) for _ in dense.ffn_units]
    return dataclasses.replace(
        dense,
        conv_channels=tuple(draw(st.integers(1, c)) for c in dense.conv_channels),
        heads=tuple(draw(st.integers(0, h)) if a else 0 for h, a in zip(dense.heads, attention)),
        ffn_units=tuple(draw(st.integers(0, f)) if z else 0 for f, z in zip(dense.ffn_units, ffn)),
        attention=tuple(attention),
        ffn=tuple(ffn),
    )


_GATE_KINDS = st.fixed_dictionaries(
    {kind: st.booleans() for kind in ("conv_channels", "heads", "ffn_units", "attention", "ffn")}
)
_SECONDS = st.floats(0.05, 4.0)


def _as_tuple(cost) -> tuple[float, float, float, float]:
    return tuple(float(x.detach() if isinstance(x, torch.Tensor) else x) for x in (cost.cnn_params, cost.transformer_params, cost.cnn_macs, cost.transformer_macs))


@FAST
@given(arch=pruned_archs(), kinds=_GATE_KINDS, seed=st.integers(0, 2**31 - 1), seconds=_SECONDS)
def test_expected_cost_at_binary_masks_is_the_shrunk_models_cost(
    arch: UpstreamArch, kinds: dict[str, bool], seed: int, seconds: float
) -> None:
    model = build_model(_dense("layer_norm" if arch.extractor_mode == "layer_norm" else "default"))
    apply_arch_(model, arch)
    gates = UpstreamGates(arch, **kinds)
    gates.attach(model)
    g = torch.Generator().manual_seed(seed)
    for gate in gates.modules():
        if isinstance(gate, HardConcreteGate):
            keep = torch.rand(gate.num_units, generator=g) < torch.rand(1, generator=g)
            if gate.min_keep:  # a conv layer keeps a channel whatever its gate says
                keep[torch.randint(gate.num_units, (1,), generator=g)] = True
            # +-40 puts P(gate != 0) at 0 or 1 to float64 precision (the default +-12 is 1e-5 away)
            gate.set_keep(keep, strength=40.0)
    gates.double()
    expected = gates.expected_cost(seconds)
    final = gates.final_units()
    gates.float()
    shrunk = shrink_upstream(model)
    counted = upstream_cost(shrunk, seconds)
    assert _as_tuple(upstream_cost(arch, seconds, final)) == _as_tuple(counted)  # integer counts: exact
    assert _as_tuple(expected) == pytest.approx(_as_tuple(counted), rel=1e-9, abs=1e-6)
    frontend = sum(p.numel() for n, p in model.named_parameters() if n != "mask_emb")
    assert counted.params == frontend
    # the gated kinds only remove units; the ungated ones keep what the architecture had
    for kind in ("heads", "ffn_units", "attention", "ffn"):
        assert all(s <= a for s, a in zip(getattr(shrunk, kind), getattr(arch, kind)))
        if not kinds[kind] and kind in ("attention", "ffn"):
            assert getattr(shrunk, kind) == getattr(arch, kind)


@FAST
@given(
    arch=pruned_archs(),
    kinds=_GATE_KINDS,
    seed=st.integers(0, 2**31 - 1),
    seconds=_SECONDS,
    step=st.floats(1e-3, 5.0),
)
def test_expected_cost_grows_with_every_gate_probability(
    arch: UpstreamArch, kinds: dict[str, bool], seed: int, seconds: float, step: float
) -> None:
    owner = UpstreamGates(arch, **kinds).double()  # float64: a tiny step must not round away
    gates = [m for m in owner.modules() if isinstance(m, HardConcreteGate)]
    if not gates:
        return
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for gate in gates:  # probabilities strictly inside (0, 1)
            gate.log_alpha.copy_(torch.randn(gate.num_units, generator=g, dtype=torch.float64) * 3)
    cost = owner.expected_cost(seconds)
    log_alphas = [gate.log_alpha for gate in gates]
    for total in (cost.params, cost.macs):
        grads = torch.autograd.grad(total, log_alphas, retain_graph=True, allow_unused=True)
        assert all(grad is None or bool((grad >= 0).all()) for grad in grads)
    # and a finite step: raising one unit's probability lowers no part of the cost
    gate = gates[int(torch.randint(len(gates), (1,), generator=g))]
    unit = int(torch.randint(gate.num_units, (1,), generator=g))
    before = _as_tuple(cost)
    with torch.no_grad():
        gate.log_alpha[unit] += step
    after = _as_tuple(owner.expected_cost(seconds))
    assert all(a >= b * (1 - 1e-12) for a, b in zip(after, before))
    assert after[0] + after[1] > before[0] + before[1] or float(gate.prob_nonzero()[unit]) == 1.0


def test_expected_units_of_ungated_kinds_are_the_architectures() -> None:
    arch = dataclasses.replace(_dense("default").arch, heads=(0, 3), attention=(False, True))
    off = dict(conv_channels=False, heads=False, ffn_units=False, attention=False, ffn=False)
    counts = UpstreamGates(arch, **off).expected_units()
    assert (counts.heads, counts.attention) == ([0, 3], [0.0, 1.0])
    assert _as_tuple(upstream_cost(arch, 1.0, counts)) == pytest.approx(
        _as_tuple(upstream_cost(arch, 1.0, UnitCounts.of(arch)))
    )


# ---------------------------------------------------------------------------------------------
# SLURP targets and records


@FAST
@given(text=st.text(max_size=60) | st.lists(st.sampled_from(["SEP", "FILL", "a", "b_c", "\u2028", "\x85"])).map(" ".join))
def test_slu_target_parse_then_format_is_a_fixed_point(text: str) -> None:
    """Any string parses to a target or raises SluTargetError; a target that formats reads back
    as itself (entities in type order), so formatting is the normal form of what parses."""
    try:
        target = parse_slu_target(text)
    except SluTargetError:
        return
    try:
        normal = format_slu_target(target)
    except ValueError:
        return  # parts that parse leniently (an empty transcript, the word FILL in it) but never get written
    again = parse_slu_target(normal)
    assert again == SluTarget(target.intent, tuple(sorted(target.entities, key=lambda e: e.type)), target.transcript)
    assert format_slu_target(again) == normal


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_GOOD_RECORD = {
    "slurp_id": 7,
    "sentence": "wake me up at five am",
    "sentence_annotation": "wake me up at [time : five am]",
    "intent": "alarm_set",
    "action": "set",
    "tokens": [{"surface": w, "id": i} for i, w in enumerate("wake me up at five am".split())],
    "scenario": "alarm",
    "recordings": [{"file": "audio-1.flac"}],
    "entities": [{"span": [4, 5], "type": "time"}],
}


@FAST
@given(replaced=st.dictionaries(st.sampled_from(sorted(_GOOD_RECORD)), _JSON, max_size=3))
def test_records_with_any_field_values_parse_or_raise_value_error(replaced: dict) -> None:
    """Whatever a jsonl line holds, reading it is a record or a ValueError (which data prep
    reports with file and line), never another exception."""
    line = json.dumps({**_GOOD_RECORD, **replaced})
    try:
        check_record(parse_record(line))
    except ValueError:
        return


# ---------------------------------------------------------------------------------------------
# LibriSpeech transcripts


@FAST
@given(
    line=st.text(max_size=30)
    | st.lists(st.text("01239\u0661\u0662\uff11\uff12\u00b2", min_size=1, max_size=3), min_size=3, max_size=3).map(
        lambda parts: "-".join(parts) + " HELLO"
    )
)
def test_accepted_utterance_ids_are_ascii_digits(line: str) -> None:
    try:
        utt_id, _ = parse_transcript_line(line)
    except ValueError:
        return
    assert utt_id.isascii() and all(part.isdigit() for part in utt_id.split("-"))


_TRANS_LINES = st.lists(
    st.sampled_from([b"1-2-0001 HELLO", b"1-2-0002 THERE  WORLD", b"1-2-0001 AGAIN", b"3-4-0001 OTHER", b"1-2-0003"])
    | st.binary(max_size=16).filter(lambda b: b"\n" not in b and b"\r" not in b),
    max_size=8,
)


@FAST
@given(lines=_TRANS_LINES)
def test_every_transcript_line_is_kept_or_reported_at_its_line(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "1-2.trans.txt"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        bad = BadInputLog(skip_bad=True)
        transcripts, _ = read_transcripts(path, "1-2", bad)
    kept = {t.line for t in transcripts.values()}
    reported = [error.line for error in bad.skipped]
    assert all(error.path == str(path) for error in bad.skipped)
    assert sorted([*kept, *reported]) == list(range(1, len(lines) + 1))


# ---------------------------------------------------------------------------------------------
# Kaldi data directories


@FAST
@given(lines=st.lists(st.binary(max_size=14).filter(lambda b: b"\n" not in b), max_size=6))
def test_read_table_reads_or_names_the_first_bad_line(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "text"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        try:
            table = read_table(path)
        except DataDirError as error:
            assert error.path == str(path) and 1 <= error.line <= len(lines)
            assert str(error).startswith(f"{path}:{error.line}: ")
            # every line before it is fine
            path.write_bytes(b"".join(line + b"\n" for line in lines[: error.line - 1]))
            read_table(path)
            return
    assert len(table) == len(lines) and list(table) == sorted(table)
    assert all(key and not any(c.isspace() for c in key) for key in table)


_ID_PART = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6) | st.sampled_from(
    ["..", ".", "a/b", "../x", "a b", "a\\b", "\ud800", "x"]
)


@FAST
@given(
    speakers=st.lists(_ID_PART, min_size=1, max_size=3, unique=True),
    suffixes=st.lists(_ID_PART, min_size=1, max_size=3),
    text=st.text(max_size=10) | st.just("HELLO"),
)
def test_data_dir_writes_and_reads_back_or_names_the_bad_id(speakers: list[str], suffixes: list[str], text: str) -> None:
    """Odd ids either round-trip through a valid data directory or are refused with a
    DataDirError naming the directory; a refused directory leaves nothing behind."""
    utterances = [
        Utterance(f"{spk}-{suffix}", spk, f"/audio/{i}.flac", text)
        for spk in speakers
        for i, suffix in enumerate(suffixes)
    ]
    tmp = Path(tempfile.mkdtemp())
    try:
        out = tmp / "d"
        try:
            write_data_dir(out, utterances)
        except DataDirError as error:
            assert error.path == str(out)
            assert list(tmp.iterdir()) == []
            return
        assert validate_data_dir(out) == len(utterances)
        assert read_table(out / "text") == {u.utt_id: u.text for u in utterances}
        assert all("/" not in u.utt_id and "/" not in u.speaker for u in utterances)
    finally:
        shutil.rmtree(tmp)
