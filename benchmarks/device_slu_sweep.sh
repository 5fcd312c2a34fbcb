#!/usr/bin/env bash
# Trainings of the synthetic SLURP recipe on a lent GPU without network, several at once on the one
# GPU, their shrunk models packed as they finish (to decode where the corpus already is).
#   bash benchmarks/device_slu_sweep.sh CARRY DEADLINE_S
# CARRY (a carried folder) holds the wheels of tools/offline_wheels.sh, espeak.tar.xz (a tar of the folder
# espeak/ that tools/espeak_bundle.sh makes: the corpus is synthesised there), audio_md5.txt (benchmarks/audio_md5.py of the corpus here: the
# script reports how many files differ), and any teacher the sweep names (copied into exp_demo/).
# SWEEP ("mac:0.7 mac:0.7+distill20" by default), SEEDS ("0 1 2"), TEACHER (a file in CARRY), OUT (where
# the packed runs go: one <tag>.tgz each, a logs.tgz). Called again on the same machine, it launches
# what is neither finished nor running (ESPnet resumes from the last epoch) and packs what finished.
# How benchmarks/RESULTS_device_check.md's SLU sweep was made (with a hand-made bundle, the same files).
set -uo pipefail
carry=$(cd "$1" && pwd); deadline=${2:-540}
tar xJf "${carry}/espeak.tar.xz" -C /tmp || exit 1
export PYTHONUNBUFFERED=1 NLTK_DATA=/tmp/nltk_data OMP_NUM_THREADS=1 PATH=/tmp/espeak/bin:${PATH}
sweep=${SWEEP:-mac:0.7 mac:0.7+distill20}; seeds=${SEEDS:-0 1 2}; teacher=${TEACHER:-teacher_slu_unpruned_seed0.pt}
out=${OUT:?set OUT to the folder for the packed runs}
start=${SECONDS}
top=${PWD}
R=egs2/synth_slurp/slu1
logs=/tmp/device_slu_sweep
mkdir -p "${logs}" "${out}"
tag_of() { echo "$1" | sed 's/[^A-Za-z0-9.]/_/g'; }
dir_of() {  # the model directory a run's log names (empty before its stage 6 starts)
    sed -n 's/.*Stage 6: training \(exp_demo\/[^ ]*\) .*/\1/p' "${logs}/$1.log" 2>/dev/null | tail -n 1
}
finished() { [ -n "$1" ] && [ -f "${top}/${R}/$1/shrunk/model.pth" ] && [ -f "${top}/${R}/$1/shrunk/upstream.safetensors" ]; }
launch() {  # every run neither finished nor running
    local point s extra tag
    cd "${top}/${R}"
    for s in ${seeds}; do
        for point in ${sweep}; do
            tag=$(tag_of "${point}")_seed${s}
            finished "$(dir_of "${tag}")" && continue
            pgrep -f "seeds ${s} .*pruning_sweep ${point//+/\\+}( |$)" > /dev/null && continue
            extra=; [[ ${point} == *distill* ]] && extra="--distill_teacher exp_demo/${teacher}"
            echo "[device_slu_sweep] launching ${point} seed ${s}"
            setsid nohup ./run.sh --demo true --ngpu 1 --nj 1 --stage 6 --stop_stage 7 --seeds "${s}" \
                --asr_configs conf/train_slu_mac0.5_ssl.yaml --pruning_sweep "${point}" ${extra} >> "${logs}/${tag}.log" 2>&1 &
        done
    done
    cd "${top}"
}
if [ ! -f "${logs}/setup_done" ]; then
    nvidia-smi -L
    # g2p_en (imported by ESPnet) downloads nltk data at import: placeholders keep it off the absent network
    python3 - <<'P'
import os, zipfile
for res in ("taggers/averaged_perceptron_tagger_eng", "corpora/cmudict"):
    path = f"/tmp/nltk_data/{res}.zip"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(res.split("/")[1] + "/", "")
P
    espeak-ng --version || exit 1
    timeout 200 bash tools/offline_venv.sh --wheels "${carry}" > "${logs}/offline_venv.log" 2>&1 || { tail -n 40 "${logs}/offline_venv.log"; exit 1; }
    echo "[device_slu_sweep] venv in $(( SECONDS - start )) s"
    (cd ${R} && ./run.sh --demo true --nj "$(nproc)" --stop_stage 4) > "${logs}/prep.log" 2>&1 || { tail -n 40 "${logs}/prep.log"; exit 1; }
    echo "[device_slu_sweep] data in $(( SECONDS - start )) s"
    mkdir -p ${R}/exp_demo
    [ ! -f "${carry}/${teacher}" ] || cp "${carry}/${teacher}" ${R}/exp_demo/
    launch
    touch "${logs}/setup_done"
    tools/venv/bin/python benchmarks/audio_md5.py ${R}/downloads/synth_slurp_small_seed0/audio > "${logs}/audio_md5.txt"
    echo "[device_slu_sweep] audio: $(wc -l < "${logs}/audio_md5.txt") files, differing from the carried list: $(diff "${logs}/audio_md5.txt" "${carry}/audio_md5.txt" | grep -c '^[<>]')"
else
    launch
fi
cd ${R}
while :; do
    running=0
    line="[device_slu_sweep] $(( SECONDS - start )) s:"
    for s in ${seeds}; do
        for point in ${sweep}; do
            tag=$(tag_of "${point}")_seed${s}
            dir=$(dir_of "${tag}")
            if finished "${dir}"; then
                if [ ! -f "${out}/${tag}.tgz" ]; then
                    tar czf "${out}/.${tag}.tgz" "${dir}/config.yaml" "${dir}"/train*.log "${dir}/shrunk" && mv "${out}/.${tag}.tgz" "${out}/${tag}.tgz"
                fi
                line="${line} ${tag}=packed"
                continue
            fi
            running=$(( running + 1 ))
            last=$(grep -o '[0-9]*epoch:train:[0-9-]*batch.*train_time=[0-9.]*' "${dir:-/dev/null}/train.log" 2>/dev/null | tail -n 1)
            line="${line} ${tag}=${last%%batch*}/$(echo "${last}" | grep -o 'train_time=[0-9.]*' | tail -n 1)"
        done
    done
    echo "${line}"
    [ ${running} -eq 0 ] && break
    [ $(( SECONDS - start )) -ge "${deadline}" ] && break
    pgrep -f "run.sh --demo true --ngpu 1" > /dev/null || { echo "[device_slu_sweep] nothing is running"; break; }
    sleep 20
done
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv
grep -h -A3 "Traceback" exp_demo/*/train.log | head -n 30
tar czf "${out}/logs.tgz" -C "$(dirname "${logs}")" "$(basename "${logs}")"
ls -la "${out}"
echo "[device_slu_sweep] total $(( SECONDS - start )) s"
