#!/usr/bin/env bash
# tools/venv on a machine without network that brings its own torch (a GPU cluster's image): a venv
# over the Python packages of the machine's python3, plus the wheels tools/offline_wheels.sh made elsewhere for it,
# plus this repository (on the path, as if editable). Checked by the same imports as tools/install.sh.
#   bash tools/offline_venv.sh --wheels DIR
set -euo pipefail

wheels=
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 2; }; wheels=$2; shift 2 ;;
        *) echo "$0: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ -n "${wheels}" ] || { echo "$0: give --wheels DIR" >&2; exit 2; }
compgen -G "${wheels}/*.whl" > /dev/null || { echo "$0: no wheels in ${wheels}" >&2; exit 2; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${ESPNET_PRUNE_VENV:-${root}/tools/venv}
py=${venv}/bin/python

if [ ! -x "${py}" ]; then
    # python3 may itself be a venv (a GPU image's /opt/.../.venv), whose packages
    # --system-site-packages would miss: a .pth adds its site-packages after the venv's own, with
    # their .pth files (setuptools' distutils shim, which ESPnet needs on Python >= 3.12)
    python3 -m venv --without-pip "${venv}"
    python3 -c 'import site; print("".join(f"import site; site.addsitedir({d!r})\n" for d in site.getsitepackages()))' \
        > "$("${py}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_machine_packages.pth"
fi
"${py}" -m pip install -q --disable-pip-version-check --no-index --no-deps --ignore-installed "${wheels}"/*.whl
# the repository on the path as an editable install would put it (pip's editable route wants
# setuptools from the network on some images)
echo "${root}" > "$("${py}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/espnet_prune.pth"
"${py}" "${root}/tools/check_imports.py" || { echo "$0: the imports of tools/check_imports.py fail in ${venv}" >&2; exit 1; }
touch "${venv}/.espnet_prune_installed"
echo "[offline_venv] ${venv}: $("${py}" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())')"
