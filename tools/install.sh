#!/usr/bin/env bash
# Idempotent set-up of tools/venv (see ../shared/STACK.md for why the steps are as they are).
# Re-running it when everything is in place only re-checks the imports (a few seconds).
# Every package is pinned by tools/constraints.txt (the versions this commit was tested with);
# `make upgrade-lock` regenerates it from the newest versions. pip's output goes to
# tools/install.log, one line per step to the screen.
#   ESPNET_PRUNE_VENV=DIR   install there instead of tools/venv
#   ESPNET_PRUNE_UNLOCKED=1 ignore tools/constraints.txt (only torch/torchaudio pinned)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${ESPNET_PRUNE_VENV:-${root}/tools/venv}
py=${venv}/bin/python
stamp=${venv}/.espnet_prune_installed
logfile=${root}/tools/install.log

log() { echo "[install $(date '+%H:%M:%S')] $*"; }

install_debian_tools() {
    local missing=()
    command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
    command -v sox >/dev/null 2>&1 || missing+=(sox)
    command -v flac >/dev/null 2>&1 || missing+=(flac)
    [ -x /usr/lib/sctk/bin/sclite ] || command -v sclite >/dev/null 2>&1 || missing+=(sctk)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "apt-get install ${missing[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        log "WARNING: missing system tools: ${missing[*]}"
        log "         install them with: sudo apt-get install -y ${missing[*]}"
        log "         (espeak-ng: synthetic corpora; sctk: sclite scoring, a Python copy of its report is used without it)"
    fi
}

check_imports() {
    "${py}" "${root}/tools/check_imports.py" >/dev/null 2>&1
}

install_debian_tools

if [ -f "${stamp}" ] && check_imports; then
    log "tools/venv is complete"
    exit 0
fi

[ -x "${py}" ] || { log "creating ${venv}"; python3 -m venv "${venv}"; }
: >"${logfile}"
log "pip's output: ${logfile}"
pip_install() {
    "${py}" -m pip install --disable-pip-version-check "$@" >>"${logfile}" 2>&1 || {
        log "ERROR: pip install failed; the end of ${logfile}:"
        tail -n 20 "${logfile}" >&2
        exit 1
    }
}
pip=(pip_install)

cons=$(mktemp); trap 'rm -f "${cons}"' EXIT
printf 'torch==2.11.0\ntorchaudio==2.11.0\n' >"${cons}"
if [ "${ESPNET_PRUNE_UNLOCKED:-0}" != 1 ]; then
    cat "${root}/tools/constraints.txt" >>"${cons}"
fi

log "torch 2.11.0 + torchaudio 2.11.0"
"${pip[@]}" -c "${cons}" torch==2.11.0 torchaudio==2.11.0
# espnet pins setuptools<74 while torch 2.11 needs >=77: its resolver cannot finish, so
# espnet goes in without dependencies and its runtime needs come from the list below.
log "espnet 202511 + espnet-s3prl (no deps)"
# ci_sdr and fast_bss_eval: espnet2.bin.asr_inference imports them (through the enhancement models)
"${pip[@]}" -c "${cons}" --no-deps espnet==202511 espnet-s3prl==2026.5.14 ci_sdr fast_bss_eval
log "runtime dependencies"
"${pip[@]}" -c "${cons}" "setuptools>=77,<82" packaging configargparse typeguard humanfriendly \
    scipy filelock "librosa>=0.10.2" PyYAML soundfile h5py kaldiio torch_complex nltk protobuf \
    opt-einsum sentencepiece editdistance "importlib-metadata<5.0" jiwer einops hydra-core tqdm \
    omegaconf requests transformers g2p_en jamo espnet_tts_frontend matplotlib \
    safetensors hypothesis pytest pytest-xdist tensorboard scikit-learn
log "espnet_prune (editable)"
"${pip[@]}" --no-build-isolation --no-deps -e "${root}"

check_imports || { log "ERROR: imports still fail after installing; run: ${py} -c 'import espnet2.tasks.asr, s3prl.nn'"; exit 1; }
touch "${stamp}"
log "done"
