#!/usr/bin/env bash
# Wheels for a tools/venv on a machine without network that brings its own torch (a GPU cluster's
# image): every package of tools/constraints.txt that the machine lacks, for its Python and CPU.
# Run here, with network; copy DIR there and run tools/offline_venv.sh --wheels DIR.
#   bash tools/offline_wheels.sh --have HAVE.txt --python_version 3.12 --out DIR
# HAVE.txt: what the machine has, one package a line (`python3 -m pip freeze` there; versions ignored).
# A package published as source only is built into a wheel here, which must then be pure Python.
set -euo pipefail

have=
python_version=
out=
while [ $# -gt 0 ]; do
    case "$1" in
        --have|--python_version|--out)
            [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 2; }
            declare "${1#--}=$2"
            shift 2 ;;
        *) echo "$0: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
for name in have python_version out; do
    [ -n "${!name}" ] || { echo "$0: give --${name}" >&2; exit 2; }
done
[ -f "${have}" ] || { echo "$0: ${have}: no such file" >&2; exit 2; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${root}/tools/venv/bin/python
mkdir -p "${out}"

# shellcheck disable=SC2207
missing=($("${py}" - "${root}/tools/constraints.txt" "${have}" <<'PY'
import re, sys
def name(line):
    return re.sub(r"[-_.]+", "-", re.split(r"[=<>~ ]", line.strip(), maxsplit=1)[0]).lower()
have = {name(line) for line in open(sys.argv[2]) if line.strip() and not line.startswith("#")}
for line in open(sys.argv[1]):
    if line.strip() and not line.startswith("#") and name(line) not in have:
        print(line.strip())
PY
))
echo "[offline_wheels] ${#missing[@]} packages the machine lacks: ${missing[*]}"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "${p}")
done
for pin in "${missing[@]}"; do
    if ! "${py}" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version "${python_version}" --implementation cp "${platforms[@]}" -d "${out}" "${pin}" 2>/dev/null; then
        "${py}" -m pip wheel -q --disable-pip-version-check --no-deps -w "${out}" "${pin}"
        built=$(ls -t "${out}"/*.whl | head -n 1)
        case "${built}" in
            *-none-any.whl) ;;
            *) echo "$0: ${pin} has no wheel for Python ${python_version} and builds to ${built}, not pure Python" >&2; exit 1 ;;
        esac
    fi
done
echo "[offline_wheels] $(ls "${out}"/*.whl | wc -l) wheels, $(du -sh "${out}" | cut -f1), in ${out}"
