#!/usr/bin/env bash
# `make demo`: the toolkit's job on its built-in default. egs2/synth_librispeech/asr1 in demo mode:
# synthesise a LibriSpeech-layout corpus, fine-tune the shipped stand-in upstream for ASR unpruned
# and with HJ-Pruning-MAC at half its MACs, shrink, decode (joint CTC/attention + LM), score with sclite,
# then print the RESULTS table. Stages already done are kept (re-running only re-prints).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
recipe=${root}/egs2/synth_librispeech/asr1
export PYTHONWARNINGS=ignore
cd "${recipe}"
start=${SECONDS}
log=exp_demo/run.log
mkdir -p exp_demo
echo "[demo] egs2/synth_librispeech/asr1: ./run.sh --demo true --train_jobs 2 (stage lines below; full log: ${recipe}/${log})"
# one line per stage on the screen, everything in the log
./run.sh --demo true --train_jobs 2 2>&1 | tee "${log}.tmp" | grep --line-buffered -E "Stage [0-9]+(:| done)|Error" || {
    mv "${log}.tmp" "${log}"
    echo "[demo] failed; the end of ${recipe}/${log}:" >&2
    tail -n 30 "${log}" >&2
    exit 1
}
mv "${log}.tmp" "${log}"
echo
sed -n '/^| model/,/^$/p' RESULTS_demo.md
echo "[demo] done in $(( SECONDS - start )) s. Report: ${recipe}/RESULTS_demo.md; figures: ${recipe}/RESULTS_demo_plots/;"
echo "[demo] models and decodings: ${recipe}/exp_demo/"
