"""Score ASR output like ESPnet's `score_wer/` and `score_cer/`: sclite, or the same report without it.

    <score_dir>/ref.trn      reference in sclite's trn format: `<tokens>\t(<spk>-<utt>)`
    <score_dir>/hyp.trn      hypothesis, same format, one line per reference utterance
    <score_dir>/result.txt   sclite's `-o all` report: SYSTEM SUMMARY tables and alignments
    <score_dir>/missing_hyp  (only if some) reference utterances that had no hypothesis

Inputs are Kaldi/ESPnet text tables `<utt-id> <words...>` (a data directory's `text`, a decode's
`text`). When `sclite` (or `sctk sclite`) is installed it is run as ESPnet runs it,
`sclite -r ref.trn trn -h hyp.trn trn -i rm -o all stdout`. Otherwise the report is computed here
with sclite's own alignment costs and tie-breaking, case folding, speaker grouping and rounding,
so that the numbers agree. (A plain Levenshtein alignment, as in jiwer, can count fewer errors
than sclite, whose substitutions cost 4 and insertions/deletions 3; see `align`.) sclite's trn
markup -- `(word)` optionally deletable, `{a / b}` alternatives, `@` -- is not interpreted here.

The score directory appears only when complete (built beside it, then renamed); a previous one is
removed first, so a failed or interrupted run never leaves a report that could pass for current.
"""

from __future__ import annotations

import logging
import re
import shutil
import statistics
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from espnet_prune.data.atomic import atomic_directory
from espnet_prune.data.datadir import read_table

logger = logging.getLogger(__name__)

Unit = Literal["word", "char"]
UNITS: tuple[Unit, ...] = ("word", "char")
SPACE_SYMBOL = "<space>"  # ESPnet's CharTokenizer writes a space as this token

# sclite's word-to-word costs (wwd_WORD in word.c): a match is free, a substitution costs less
# than an insertion plus a deletion.
SUB_COST = 4.0
INS_COST = 3.0
DEL_COST = 3.0

_SCREEN_WIDTH = 80
_ALIGNMENT_LINE_WIDTH = 1000  # sclite's default -l
_SUMMARY_TITLE = "SYSTEM SUMMARY PERCENTAGES by SPEAKER"
_ZERO_WORD_NOTE = (
    "\n* No Reference words for this/these speaker(s).  Word counts supplied\n"
    "  rather than percents.\n"
    "# No Reference words for this/these speaker(s).  NCE not computable.\n"
    "+ Speaker(s) with no reference data is ignored\n"
)
_DIAGONAL, _DELETION, _INSERTION = 0, 1, 2


class ScoringInputError(ValueError):
    """Input that cannot be scored; the message names the file and, if known, the line."""

    def __init__(self, reason: str, path: str | Path, line: int | None = None) -> None:
        location = str(path) if line is None else f"{path}:{line}"
        super().__init__(f"{location}: {reason}")


# ---------------------------------------------------------------------------------------------
# Inputs


def tokenize(text: str, unit: Unit) -> list[str]:
    """Words, or characters with `<space>` between words as ESPnet's score_cer writes them."""
    words = text.split()
    if unit == "word":
        return words
    tokens: list[str] = []
    for position, word in enumerate(words):
        if position:
            tokens.append(SPACE_SYMBOL)
        tokens.extend(word)
    return tokens


def _ascii_lower(text: str) -> str:
    # sclite folds case byte by byte, so only ASCII letters (never "Ü" to "ü").
    return text.encode("utf-8").lower().decode("utf-8")


def _ascii_upper(text: str) -> str:
    return text.encode("utf-8").upper().decode("utf-8")


@dataclass(frozen=True)
class Utterance:
    """One utterance to score: ids and its reference and hypothesis tokens."""

    utt_id: str
    speaker: str
    ref: tuple[str, ...]
    hyp: tuple[str, ...]

    @property
    def trn_id(self) -> str:
        """The trn id `<spk>-<utt>`, as ESPnet writes it."""
        return f"{self.speaker}-{self.utt_id}"

    @property
    def sclite_id(self) -> str:
        """The id as sclite reports it: lower-cased (ASCII)."""
        return _ascii_lower(self.trn_id)

    @property
    def sclite_speaker(self) -> str:
        """The speaker sclite groups by (`-i rm`): the lower-cased id up to its first '-'."""
        return self.sclite_id.split("-", 1)[0]


def pair_utterances(
    refs: Mapping[str, str],
    hyps: Mapping[str, str],
    unit: Unit,
    hyp_path: Path,
    utt2spk: Mapping[str, str] | None = None,
) -> tuple[list[Utterance], list[str]]:
    """The utterances in reference order, and the ids without hypothesis (scored as empty).

    ScoringInputError if the hypothesis has ids that the reference lacks: it belongs to another
    test set, or the ids were mangled. The speaker comes from `utt2spk` (which must cover every
    reference id), or without it is the utterance id up to its first '-' (Kaldi's
    speaker-prefixed utterance ids).
    """
    unknown = [utt_id for utt_id in hyps if utt_id not in refs]
    if unknown:
        raise ScoringInputError(
            f"{len(unknown)} hypothesis id(s) not in the reference: {_abbreviate(unknown)}", hyp_path
        )
    utterances = []
    for utt_id, ref_text in refs.items():
        speaker = utt_id.split("-", 1)[0] if utt2spk is None else utt2spk[utt_id]
        ref = tuple(tokenize(ref_text, unit))
        hyp = tuple(tokenize(hyps.get(utt_id, ""), unit))
        utterances.append(Utterance(utt_id, speaker, ref, hyp))
    missing = [utt_id for utt_id in refs if utt_id not in hyps]
    return utterances, missing


def _abbreviate(items: Sequence[str], shown: int = 5) -> str:
    listed = ", ".join(items[:shown])
    return listed if len(items) <= shown else f"{listed}, ... ({len(items) - shown} more)"


def format_trn(utterances: Sequence[Utterance], side: Literal["ref", "hyp"]) -> str:
    """A trn file as ESPnet's `paste` writes it: tokens, a tab, `(<spk>-<utt>)`."""
    return "".join(f"{' '.join(getattr(u, side))}\t({u.trn_id})\n" for u in utterances)


# ---------------------------------------------------------------------------------------------
# sclite's alignment and counts

AlignedPair = tuple[str | None, str | None]


def same_token(ref: str, hyp: str) -> bool:
    """Whether sclite counts the pair as correct: equal up to ASCII case."""
    return _ascii_lower(ref) == _ascii_lower(hyp)


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[AlignedPair]:
    """Align tokens as sclite does; an insertion is (None, hyp), a deletion (ref, None).

    This minimises sclite's cost, not the error count: for ref `a b c d e f g`, hyp
    `e f g h i j k` it deletes 4 and inserts 4 (8 errors, cost 24) where Levenshtein (jiwer)
    substitutes 7 (7 errors, cost 28); for ref `a b`, hyp `b c` it gives 1 deletion + 1
    insertion where jiwer gives 2 substitutions. Ties are broken as in sclite's net_dp.c: the
    diagonal step if no worse than the others, else the deletion if strictly cheaper than the
    insertion, else the insertion.
    """
    ref_folded = [_ascii_lower(token) for token in ref]
    hyp_folded = [_ascii_lower(token) for token in hyp]
    step = [[_INSERTION] * (len(hyp) + 1)]
    previous = [INS_COST * j for j in range(len(hyp) + 1)]
    for ref_token in ref_folded:
        current = [previous[0] + DEL_COST]
        moves = [_DELETION]
        for j, hyp_token in enumerate(hyp_folded, start=1):
            diagonal = previous[j - 1] + (0.0 if ref_token == hyp_token else SUB_COST)
            deletion = previous[j] + DEL_COST
            insertion = current[j - 1] + INS_COST
            if diagonal <= deletion and diagonal <= insertion:
                current.append(diagonal)
                moves.append(_DIAGONAL)
            elif deletion < insertion:
                current.append(deletion)
                moves.append(_DELETION)
            else:
                current.append(insertion)
                moves.append(_INSERTION)
        step.append(moves)
        previous = current
    pairs: list[AlignedPair] = []
    i, j = len(ref), len(hyp)
    while i or j:
        if step[i][j] == _DIAGONAL:
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif step[i][j] == _DELETION:
            pairs.append((ref[i - 1], None))
            i -= 1
        else:
            pairs.append((None, hyp[j - 1]))
            j -= 1
    pairs.reverse()
    return pairs


@dataclass(frozen=True)
class Counts:
    """Sentence and token counts of an utterance, a speaker or a test set."""

    n_sent: int = 0
    corr: int = 0
    sub: int = 0
    deletions: int = 0
    ins: int = 0
    sent_err: int = 0

    @property
    def n_ref(self) -> int:
        """Reference tokens: sclite's `# Wrd`."""
        return self.corr + self.sub + self.deletions

    @property
    def err(self) -> int:
        return self.sub + self.deletions + self.ins

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.n_sent + other.n_sent,
            self.corr + other.corr,
            self.sub + other.sub,
            self.deletions + other.deletions,
            self.ins + other.ins,
            self.sent_err + other.sent_err,
        )


def count_errors(pairs: Sequence[AlignedPair]) -> Counts:
    """The counts of one aligned utterance (a sentence error if any token is wrong)."""
    corr = sub = deletions = ins = 0
    for ref, hyp in pairs:
        if ref is None:
            ins += 1
        elif hyp is None:
            deletions += 1
        elif same_token(ref, hyp):
            corr += 1
        else:
            sub += 1
    return Counts(1, corr, sub, deletions, ins, int(sub + deletions + ins > 0))


# ---------------------------------------------------------------------------------------------
# The report, laid out as sclite lays it out (scores.c, path.c)


def _pct(part: float, whole: float) -> float:
    # sclite's pct(): 0 for an empty denominator, this order of operations.
    return 0.0 if whole == 0 else part / whole * 100.0


def _sclite_round(value: float, digits: int) -> float:
    # sclite's F_ROUND: add a half (away from zero) and truncate; printf alone would round half
    # to even on exact binary halves (56.25 -> "56.2" where sclite prints 56.3).
    scale = 10.0**digits
    return float(int(value * scale + (0.5 if value > 0.0 else -0.5))) / scale


def _number(value: float, digits: int, mark: str = " ") -> str:
    return f"{_sclite_round(value, digits):5.{digits}f}{mark}"


def _center(text: str, width: int) -> str:
    # sclite centres with the odd space on the right.
    left = (width - len(text)) // 2
    return " " * left + text + " " * (width - len(text) - left)


Row = tuple[str, list[str], list[str]]  # name, sizes (# Snt, # Wrd), error columns


def _render_box(title: str, header: Row, speakers: Sequence[Row], total: Row, stats: Sequence[Row]) -> str:
    """A box like sclite's Desc tables: columns as wide as their widest cell, one space apart."""
    all_rows = [header, *speakers, total, *stats]
    name_width = max(len(name) for name, _, _ in all_rows)
    size_widths = [max(len(row[1][k]) for row in all_rows) for k in range(2)]
    error_widths = [max(len(row[2][k]) for row in all_rows) for k in range(len(header[2]))]

    def cells(row: Row, align_name: Callable[[str, int], str], align_cell: Callable[[str, int], str]) -> str:
        name, sizes, errors = row
        size_text = " ".join(align_cell(c, w) for c, w in zip(sizes, size_widths, strict=True))
        error_text = " ".join(align_cell(c, w) for c, w in zip(errors, error_widths, strict=True))
        return f"|{align_name(name, name_width)}|{size_text}|{error_text}|"

    section_rule = (
        "|" + "+".join("-" * len(part) for part in cells(header, str.ljust, _center)[1:-1].split("|")) + "|"
    )
    inner = len(section_rule) - 2
    lines = [
        f",{'-' * inner}.",
        f"|{_center(title, inner)}|",
        f"|{'-' * inner}|",
        cells(header, str.ljust, _center),
    ]
    for row in speakers:
        lines += [section_rule, cells(row, str.ljust, _center)]
    lines += [f"|{'=' * inner}|", cells(total, str.ljust, _center), f"|{'=' * inner}|"]
    lines += [cells(row, _center, _center) for row in stats]
    lines.append(f"`{'-' * inner}'")
    indent = " " * ((_SCREEN_WIDTH - inner - 2) // 2)
    return "".join(f"{indent}{line}\n" for line in lines)


_HEADER: Row = (" SPKR", [" # Snt", "# Wrd"], ["Corr", " Sub", " Del", " Ins", " Err", "S.Err"])


def _error_values(counts: Counts) -> list[float]:
    return [counts.corr, counts.sub, counts.deletions, counts.ins, counts.err]


def _summary_stats(speakers: Sequence[Counts], raw: bool) -> list[Row]:
    """Mean, S.D. (n - 1) and median over speakers, as sclite computes them.

    For percentages sclite means to leave out speakers without reference words (marking the
    columns '+'); its loop (scores.c) shifts the value arrays but keeps testing the unshifted word
    counts, so with several such speakers it drops others. That is reproduced, so the tables match.
    """
    sizes = [[float(c.n_sent) for c in speakers], [float(c.n_ref) for c in speakers]]
    errors = [
        [
            float(_error_values(c)[k]) if raw or c.n_ref == 0 else _pct(_error_values(c)[k], c.n_ref)
            for c in speakers
        ]
        for k in range(5)
    ]
    zero_word = 0 if raw else sum(1 for c in speakers if c.n_ref == 0)
    if zero_word:
        for position, counts in enumerate(speakers):
            if counts.n_ref == 0:
                for column in errors:
                    del column[position]
                    column.append(-1000.0)
    kept = [column[: len(speakers) - zero_word] for column in errors]
    sentence_errors = [float(c.sent_err) if raw else _pct(c.sent_err, c.n_sent) for c in speakers]
    mark = "+" if zero_word else " "
    rows = []
    for name, stat in ((" Mean ", _mean), (" S.D. ", _sample_sd), ("Median", _median)):
        rows.append(
            (
                name,
                [_number(stat(column), 1) for column in sizes],
                [_number(stat(column), 1, mark) for column in kept] + [_number(stat(sentence_errors), 1)],
            )
        )
    return rows


def _mean(values: Sequence[float]) -> float:
    # A plain running sum, as sclite's C code adds (fmean's exact sum could round differently).
    return sum(values) / len(values) if values else 0.0


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _sample_sd(values: Sequence[float]) -> float:
    # sclite: sqrt(sum of squared deviations / (n - 1)), 0 when the deviations sum to 0.
    mean = _mean(values)
    squares = sum((v - mean) * (v - mean) for v in values)
    return (squares / (len(values) - 1)) ** 0.5 if squares != 0.0 else 0.0


def _speaker_row(name: str, counts: Counts, raw: bool) -> Row:
    sizes = [f"{counts.n_sent:5d}", f"{counts.n_ref:5d}"]
    if raw:
        errors = [_number(v, 0) for v in _error_values(counts)] + [_number(counts.sent_err, 0)]
    elif counts.n_ref == 0:
        # sclite prints the counts, marked, where there is nothing to divide by.
        errors = [_number(v, 0, "*") for v in _error_values(counts)]
        errors.append(_number(_pct(counts.sent_err, counts.n_sent), 1))
    else:
        errors = [_number(_pct(v, counts.n_ref), 1) for v in _error_values(counts)]
        errors.append(_number(_pct(counts.sent_err, counts.n_sent), 1))
    return (f" {name} ", sizes, errors)


def _total_row(total: Counts, raw: bool) -> Row:
    sizes = [f"{total.n_sent:5d}", f"{total.n_ref:5d}"]
    if raw:
        errors = [_number(v, 0) for v in (*_error_values(total), total.sent_err)]
        return (" Sum", sizes, errors)
    errors = [_number(_pct(v, total.n_ref), 1) for v in _error_values(total)]
    errors.append(_number(_pct(total.sent_err, total.n_sent), 1))
    return (" Sum/Avg", sizes, errors)


def format_summary(title: str, by_speaker: Mapping[str, Counts], raw: bool) -> str:
    """sclite's SYSTEM SUMMARY table by speaker, in percentages (`sum`) or counts (`rsum`)."""
    speakers = list(by_speaker.values())
    total = sum(speakers, Counts())
    box = _render_box(
        title,
        _HEADER,
        [_speaker_row(name, counts, raw) for name, counts in by_speaker.items()],
        _total_row(total, raw),
        _summary_stats(speakers, raw),
    )
    note = _ZERO_WORD_NOTE if not raw and any(c.n_ref == 0 for c in speakers) else ""
    return f"\n\n\n{_center(_SUMMARY_TITLE, _SCREEN_WIDTH)}\n\n{box}{note}"


def format_alignment(utterance: Utterance, pairs: Sequence[AlignedPair]) -> str:
    """One utterance of sclite's alignment dump: id, counts, REF/HYP/Eval lines (wrapped)."""
    counts = count_errors(pairs)
    out = [f"id: ({utterance.sclite_id})\n"]
    out.append(f"Scores: (#C #S #D #I) {counts.corr} {counts.sub} {counts.deletions} {counts.ins}\n")
    columns = [_alignment_column(ref, hyp) for ref, hyp in pairs]
    start = 0
    while start < len(columns):
        end = _pass_end(columns, start)
        prefix = ">> " if start else ""
        if start:
            out.append("\n")
        for label, index in (("REF:  ", 0), ("HYP:  ", 1), ("Eval: ", 2)):
            cells = "".join(_pad_bytes(column[index], column[3]) + " " for column in columns[start:end])
            out.append(f"{prefix}{label}{cells}\n")
        start = end
    return "".join(out)


def _alignment_column(ref: str | None, hyp: str | None) -> tuple[str, str, str, int]:
    """(ref text, hyp text, eval mark, width in bytes) as sclite prints a pair."""
    ref_bytes = len(ref.encode("utf-8")) if ref is not None else 0
    hyp_bytes = len(hyp.encode("utf-8")) if hyp is not None else 0
    if ref is None:
        return ("*" * hyp_bytes, _ascii_upper(hyp or ""), "I", max(1, hyp_bytes))
    if hyp is None:
        return (_ascii_upper(ref), "*" * ref_bytes, "D", max(1, ref_bytes))
    if same_token(ref, hyp):
        # sclite folds case when it reads the text, and shows errors in upper case.
        return (_ascii_lower(ref), _ascii_lower(hyp), "", ref_bytes)
    return (_ascii_upper(ref), _ascii_upper(hyp), "S", max(ref_bytes, hyp_bytes))


def _pass_end(columns: Sequence[tuple[str, str, str, int]], start: int) -> int:
    # sclite fills a line up to -l columns, dropping the column that crossed the limit.
    width = 9 if start else 6
    index = start
    while width < _ALIGNMENT_LINE_WIDTH and index < len(columns):
        width += 1 + columns[index][3]
        index += 1
    end = index - 1 if index < len(columns) else index
    return max(end, start + 1)


def _pad_bytes(text: str, width: int) -> str:
    # printf's "%-*s" pads to a width in bytes.
    return text + " " * max(0, width - len(text.encode("utf-8")))


def format_alignments(
    title: str, by_speaker: Mapping[str, Sequence[tuple[Utterance, list[AlignedPair]]]]
) -> str:
    """sclite's alignment dump (`pralign` part of `-o all`)."""
    out = ["\n\n\t\tDUMP OF SYSTEM ALIGNMENT STRUCTURE\n\n", f"System name:   {title}\n\n", "Speakers: \n"]
    out += [f"   {index:2d}:  {name}\n" for index, name in enumerate(by_speaker)]
    out.append("\n")
    for index, (name, utterances) in enumerate(by_speaker.items()):
        out.append(f"Speaker sentences{index:4d}:  {name}   #utts: {len(utterances)}\n")
        for utterance, pairs in utterances:
            out += [format_alignment(utterance, pairs), "\n"]
    out.append("\n")
    return "".join(out)


def python_sclite_report(utterances: Sequence[Utterance], title: str) -> str:
    """What `sclite -i rm -o all stdout` prints for these utterances, computed in Python."""
    aligned: dict[str, list[tuple[Utterance, list[AlignedPair]]]] = {}
    for utterance in utterances:
        aligned.setdefault(utterance.sclite_speaker, []).append(
            (utterance, align(utterance.ref, utterance.hyp))
        )
    by_speaker = {
        name: sum((count_errors(pairs) for _, pairs in items), Counts()) for name, items in aligned.items()
    }
    return (
        format_summary(title, by_speaker, raw=False)
        + format_summary(title, by_speaker, raw=True)
        + format_alignments(title, aligned)
    )


# ---------------------------------------------------------------------------------------------
# sclite itself


def find_sctk(tool: str) -> list[str] | None:
    """The command that runs an sctk tool (``tool`` itself, or Debian's `sctk <tool>`), or None."""
    if path := shutil.which(tool):
        return [path]
    if path := shutil.which("sctk"):
        return [path, tool]
    return None


def find_sclite() -> list[str] | None:
    """The command that runs sclite (`sclite`, or Debian's `sctk sclite`), or None."""
    return find_sctk("sclite")


def run_sclite(sclite: Sequence[str], score_dir: Path) -> str:
    """Run sclite on score_dir/ref.trn and hyp.trn as ESPnet does; its stdout (the report)."""
    command = [*sclite, "-r", "ref.trn", "trn", "-h", "hyp.trn", "trn", "-i", "rm", "-o", "all", "stdout"]
    # Run inside the directory so that the report's title is "hyp.trn", as in ESPnet's.
    done = subprocess.run(command, cwd=score_dir, capture_output=True, text=True, check=False)
    if done.returncode != 0 or "Sum/Avg" not in done.stdout:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


# ---------------------------------------------------------------------------------------------
# Reading a report back


_SUMMARY_ROW = re.compile(r"^\s*\|\s*(Sum/Avg|Sum)\s*\|([^|]*)\|([^|]*)\|")


def parse_sclite_summary(result_txt: str) -> dict[str, float | int]:
    """The totals of an sclite report: percentages from `Sum/Avg`, counts from `Sum` if present.

    Keys: wer (= err), corr, sub, del, ins, err, serr (percent, as printed), n_sent, n_words, and
    when the report has the counts table (`-o all` or `rsum`): n_corr, n_sub, n_del, n_ins, n_err,
    n_sent_err. ValueError if the text has no `Sum/Avg` row.
    """
    summary: dict[str, float | int] = {}
    for line in result_txt.splitlines():
        match = _SUMMARY_ROW.match(line)
        if not match:
            continue
        sizes = [int(v) for v in match.group(2).split()]
        values = [float(v.rstrip("*+")) for v in match.group(3).split()]
        if len(sizes) != 2 or len(values) != 6:
            raise ValueError(f"unexpected sclite summary row: {line.strip()!r}")
        names = ("corr", "sub", "del", "ins", "err", "serr")
        if match.group(1) == "Sum/Avg" and "wer" not in summary:
            summary.update(n_sent=sizes[0], n_words=sizes[1], **dict(zip(names, values, strict=True)))
            summary["wer"] = summary["err"]
        elif match.group(1) == "Sum" and "n_err" not in summary:
            summary.update(
                {
                    f"n_{name}" if name != "serr" else "n_sent_err": int(v)
                    for name, v in zip(names, values, strict=True)
                }
            )
    if "wer" not in summary:
        raise ValueError("no 'Sum/Avg' row: not an sclite report")
    return summary


# ---------------------------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True)
class ScoreResult:
    """What scoring wrote and found."""

    score_dir: Path
    summary: dict[str, float | int]
    missing_hyp: list[str]
    scorer: str  # "sclite" or "python"


def score(
    ref_path: Path,
    hyp_path: Path,
    score_dir: Path,
    unit: Unit = "word",
    utt2spk_path: Path | None = None,
    use_sclite: bool | None = None,
) -> ScoreResult:
    """Write `score_dir` (ref.trn, hyp.trn, result.txt[, missing_hyp]) and return its totals.

    `use_sclite`: None runs sclite when installed, else the Python report; True requires sclite;
    False always uses the Python report. Reference utterances without hypothesis are scored as
    empty hypotheses (all deletions), logged, and listed in `missing_hyp`.
    """
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r} is not one of {UNITS}")
    score_dir = Path(score_dir)
    # A report left from an earlier run would look current if this one failed or were interrupted.
    shutil.rmtree(score_dir, ignore_errors=True)
    refs = read_table(ref_path, strict=False, error=ScoringInputError)
    if not refs:
        raise ScoringInputError("no utterances", ref_path)
    hyps = read_table(hyp_path, strict=False, error=ScoringInputError)
    utt2spk = None if utt2spk_path is None else read_table(utt2spk_path, strict=False, error=ScoringInputError)
    if utt2spk is not None:
        no_speaker = [utt_id for utt_id in refs if not utt2spk.get(utt_id)]
        if no_speaker:
            raise ScoringInputError(f"no speaker for {_abbreviate(no_speaker)}", utt2spk_path)
    utterances, missing = pair_utterances(refs, hyps, unit, Path(hyp_path), utt2spk)
    if missing:
        logger.warning(
            "%s: %d of %d utterances have no hypothesis, scored as empty: %s",
            hyp_path,
            len(missing),
            len(refs),
            _abbreviate(missing),
        )
    sclite = find_sclite() if use_sclite is not False else None
    if use_sclite and sclite is None:
        raise RuntimeError("sclite is not installed (neither `sclite` nor `sctk` is on PATH)")
    with atomic_directory(score_dir) as tmp:
        (tmp / "ref.trn").write_text(format_trn(utterances, "ref"), encoding="utf-8")
        (tmp / "hyp.trn").write_text(format_trn(utterances, "hyp"), encoding="utf-8")
        if missing:
            (tmp / "missing_hyp").write_text("".join(f"{u}\n" for u in missing), encoding="utf-8")
        report = run_sclite(sclite, tmp) if sclite else python_sclite_report(utterances, "hyp.trn")
        (tmp / "result.txt").write_text(report, encoding="utf-8")
    return ScoreResult(score_dir, parse_sclite_summary(report), missing, "sclite" if sclite else "python")
