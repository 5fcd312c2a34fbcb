"""ASR scoring: sclite's numbers by hand, sclite against the Python report, bad input, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espnet_prune.asr import score as score_module
from espnet_prune.asr.score import (
    ScoringInputError,
    Utterance,
    align,
    count_errors,
    find_sclite,
    format_trn,
    parse_sclite_summary,
    python_sclite_report,
    run_sclite,
    score,
    tokenize,
)
from espnet_prune.bin import score_asr

NO_DEADLINE = settings(deadline=None, max_examples=40)
needs_sclite = pytest.mark.skipif(find_sclite() is None, reason="sclite (sctk) is not installed")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def ref_hyp(tmp_path: Path) -> tuple[Path, Path]:
    # By hand (sclite costs: sub 4, ins 3, del 3):
    #   spk1-a  ref "the cat sat on the mat"  hyp "the cat sat on mat"    -> C5 D1        (1 error)
    #   spk1-b  ref "hello world"             hyp "hello there world"     -> C2 I1        (1 error)
    #   spk2-c  ref "a b"                     hyp "b c"                   -> C1 D1 I1     (2 errors;
    #           two substitutions would cost 8 > 3 + 3)
    #   spk2-d  ref "good morning"            hyp "good morning"          -> C2           (correct)
    # 12 reference words; C 10, S 0, D 2, I 2: Err 4/12 = 33.3 %, Corr 83.3 %, Del 16.7 %,
    # Ins 16.7 %; 3 of 4 sentences wrong: S.Err 75.0 %.
    ref = write_lines(
        tmp_path / "ref",
        ["spk1-a the cat sat on the mat", "spk1-b hello world", "spk2-c a b", "spk2-d good morning"],
    )
    hyp = write_lines(
        tmp_path / "hyp",
        ["spk1-a the cat sat on mat", "spk1-b hello there world", "spk2-c b c", "spk2-d good morning"],
    )
    return ref, hyp


HAND_COMPUTED = {
    "n_sent": 4, "n_words": 12, "corr": 83.3, "sub": 0.0, "del": 16.7, "ins": 16.7,
    "err": 33.3, "wer": 33.3, "serr": 75.0, "n_corr": 10, "n_sub": 0, "n_del": 2, "n_ins": 2,
    "n_err": 4, "n_sent_err": 3,
}  # fmt: skip


def test_python_report_gives_the_hand_computed_numbers(ref_hyp: tuple[Path, Path], tmp_path: Path) -> None:
    result = score(*ref_hyp, tmp_path / "score_wer", use_sclite=False)
    assert result.scorer == "python"
    assert result.summary == HAND_COMPUTED
    assert parse_sclite_summary((tmp_path / "score_wer" / "result.txt").read_text()) == HAND_COMPUTED
    assert (tmp_path / "score_wer" / "ref.trn").read_text().splitlines()[
        0
    ] == "the cat sat on the mat\t(spk1-spk1-a)"


@needs_sclite
def test_sclite_gives_the_hand_computed_numbers_and_the_same_report(
    ref_hyp: tuple[Path, Path], tmp_path: Path
) -> None:
    with_sclite = score(*ref_hyp, tmp_path / "sclite", use_sclite=True)
    without = score(*ref_hyp, tmp_path / "python", use_sclite=False)
    assert with_sclite.scorer == "sclite"
    assert with_sclite.summary == HAND_COMPUTED
    assert (tmp_path / "sclite" / "result.txt").read_text() == (
        tmp_path / "python" / "result.txt"
    ).read_text()
    assert without.summary == with_sclite.summary


def test_sclite_alignment_differs_from_levenshtein_where_costs_differ() -> None:
    # 7 substitutions would cost 28, 4 deletions + 4 insertions cost 24: sclite takes the latter.
    ref, hyp = list("abcdefg"), list("efghijk")
    counts = count_errors(align(ref, hyp))
    assert (counts.corr, counts.sub, counts.deletions, counts.ins) == (3, 0, 4, 4)
    levenshtein = jiwer.process_words(" ".join(ref), " ".join(hyp))
    assert levenshtein.substitutions + levenshtein.deletions + levenshtein.insertions == 7


def test_case_is_folded_for_ascii_letters_only() -> None:
    counts = count_errors(align(["New", "York", "Über"], ["new", "YORK", "über"]))
    assert (counts.corr, counts.sub) == (2, 1)


def test_char_unit_writes_spaces_as_espnet_does(tmp_path: Path) -> None:
    assert tokenize("ab c", "char") == ["a", "b", "<space>", "c"]
    assert tokenize("", "char") == []
    ref = write_lines(tmp_path / "ref", ["s-1 ab c"])
    hyp = write_lines(tmp_path / "hyp", ["s-1 ab d"])
    result = score(ref, hyp, tmp_path / "score_cer", unit="char", use_sclite=False)
    # 4 reference tokens (a, b, <space>, c), one substituted.
    assert (result.summary["n_words"], result.summary["n_sub"], result.summary["err"]) == (4, 1, 25.0)
    assert (tmp_path / "score_cer" / "hyp.trn").read_text() == "a b <space> d\t(s-s-1)\n"


# ---------------------------------------------------------------------------------------------
# Properties, and sclite against the Python report on random input

WORDS = st.sampled_from(["a", "b", "A", "the", "cat", "Über", "über", "x"])
SENTENCES = st.lists(WORDS, max_size=8).map(tuple)


@NO_DEADLINE
@given(ref=SENTENCES, hyp=SENTENCES)
def test_counts_are_consistent_and_never_below_the_edit_distance(
    ref: tuple[str, ...], hyp: tuple[str, ...]
) -> None:
    counts = count_errors(align(ref, hyp))
    assert counts.corr + counts.sub + counts.deletions == len(ref)
    assert counts.corr + counts.sub + counts.ins == len(hyp)
    folded = [w.encode().lower() for w in ref], [w.encode().lower() for w in hyp]
    assert (counts.err == 0) == (folded[0] == folded[1])
    if ref:
        levenshtein = jiwer.process_words(" ".join(ref).lower(), " ".join(hyp).lower()) if hyp else None
        minimum = (
            len(ref)
            if levenshtein is None
            else (levenshtein.substitutions + levenshtein.deletions + levenshtein.insertions)
        )
        # jiwer lower-cases Ü too, so it can only find fewer errors.
        assert counts.err >= minimum


UTTERANCES = st.lists(
    st.tuples(st.sampled_from(["s1", "S2", "spk3"]), SENTENCES, SENTENCES), min_size=1, max_size=6
).map(lambda rows: [Utterance(f"u{i}", spk, ref, hyp) for i, (spk, ref, hyp) in enumerate(rows)])


@needs_sclite
@NO_DEADLINE
@given(utterances=UTTERANCES)
def test_python_report_equals_sclite_byte_for_byte(utterances: list[Utterance], tmp_path_factory) -> None:
    # Covers empty references and hypotheses, speakers without reference words, case folding,
    # multi-byte words (aligned by bytes, as sclite pads), and the sentence error rate.
    score_dir = tmp_path_factory.mktemp("score")
    (score_dir / "ref.trn").write_text(format_trn(utterances, "ref"), encoding="utf-8")
    (score_dir / "hyp.trn").write_text(format_trn(utterances, "hyp"), encoding="utf-8")
    from_sclite = run_sclite(find_sclite(), score_dir)
    computed = python_sclite_report(utterances, "hyp.trn")
    assert parse_sclite_summary(computed) == parse_sclite_summary(from_sclite)
    assert computed == from_sclite


# ---------------------------------------------------------------------------------------------
# Bad input


def test_missing_hypothesis_counts_as_deletions_and_is_listed(
    ref_hyp: tuple[Path, Path], tmp_path: Path, caplog
) -> None:
    ref, _ = ref_hyp
    hyp = write_lines(
        tmp_path / "partial", ["spk1-a the cat sat on the mat", "spk1-b hello world", "spk2-d good morning"]
    )
    result = score(ref, hyp, tmp_path / "out", use_sclite=False)
    assert result.missing_hyp == ["spk2-c"]
    assert (tmp_path / "out" / "missing_hyp").read_text() == "spk2-c\n"
    assert (result.summary["n_sent"], result.summary["n_del"], result.summary["n_err"]) == (4, 2, 2)
    assert "1 of 4 utterances have no hypothesis" in caplog.text
    assert "\t(spk2-spk2-c)" in (tmp_path / "out" / "hyp.trn").read_text()


def test_empty_hypothesis_line_is_an_empty_hypothesis(tmp_path: Path) -> None:
    ref = write_lines(tmp_path / "ref", ["s-1 a b", "s-2 c"])
    hyp = write_lines(tmp_path / "hyp", ["s-1", "s-2 c"])
    result = score(ref, hyp, tmp_path / "out", use_sclite=False)
    assert result.missing_hyp == []
    assert (result.summary["n_del"], result.summary["n_sent_err"]) == (2, 1)


def test_hypothesis_ids_not_in_reference_are_named(ref_hyp: tuple[Path, Path], tmp_path: Path) -> None:
    ref, _ = ref_hyp
    hyp = write_lines(tmp_path / "hyp", ["spk1-a the cat", "other-1 x", "other-2 y"])
    with pytest.raises(
        ScoringInputError, match=r"hyp: 2 hypothesis id\(s\) not in the reference: other-1, other-2"
    ):
        score(ref, hyp, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_utf8_input_names_file_and_line(ref_hyp: tuple[Path, Path], tmp_path: Path) -> None:
    ref, _ = ref_hyp
    hyp = tmp_path / "latin1"
    hyp.write_bytes(b"spk1-a the cat\nspk1-b caf\xe9\n")
    with pytest.raises(ScoringInputError, match=r"latin1:2: not UTF-8 \(byte 0xe9 at column 11\)"):
        score(ref, hyp, tmp_path / "out")


def test_duplicate_ids_and_uncovered_utt2spk_are_errors(ref_hyp: tuple[Path, Path], tmp_path: Path) -> None:
    ref, hyp = ref_hyp
    twice = write_lines(tmp_path / "twice", ["spk1-a x", "spk1-a y"])
    with pytest.raises(ScoringInputError, match=r"twice:2: key 'spk1-a' occurs twice"):
        score(ref, twice, tmp_path / "out")
    utt2spk = write_lines(tmp_path / "utt2spk", ["spk1-a spk1"])
    with pytest.raises(ScoringInputError, match=r"utt2spk: no speaker for spk1-b, spk2-c, spk2-d"):
        score(ref, hyp, tmp_path / "out", utt2spk_path=utt2spk)


def test_parse_rejects_text_that_is_not_a_report() -> None:
    with pytest.raises(ValueError, match="not an sclite report"):
        parse_sclite_summary("WER 12.0\n")


# ---------------------------------------------------------------------------------------------
# Atomic output and the command line


def test_interrupted_scoring_leaves_no_result(
    ref_hyp: tuple[Path, Path], tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "score_wer"
    score(*ref_hyp, out, use_sclite=False)
    assert (out / "result.txt").is_file()

    def killed(*_args, **_kwargs) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(score_module, "python_sclite_report", killed)
    with pytest.raises(KeyboardInterrupt):
        score(*ref_hyp, out, use_sclite=False)
    # Neither the old report (now stale) nor a partial one is left; no temporaries either.
    assert not out.exists()
    assert {p.name for p in tmp_path.iterdir()} == {"ref", "hyp"}


def test_cli_prints_totals_and_fails_cleanly(ref_hyp: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    ref, hyp = ref_hyp
    args = ["--ref", str(ref), "--hyp", str(hyp), "--out", str(tmp_path / "s"), "--scorer", "python"]
    assert score_asr.main([*args, "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert (totals["wer"], totals["serr"], totals["missing_hyp"]) == (33.3, 75.0, 0)
    assert (
        score_asr.main(["--ref", str(ref), "--hyp", str(tmp_path / "absent"), "--out", str(tmp_path / "t")])
        == 1
    )
