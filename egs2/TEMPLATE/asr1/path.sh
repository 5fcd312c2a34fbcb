# Sourced by the recipe scripts: the project's virtual environment (tools/install.sh makes it).
# MAIN_ROOT (the repository) may be given, for a copy of a recipe outside the repository.
MAIN_ROOT=${MAIN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
if [ ! -x "${MAIN_ROOT}/tools/venv/bin/python" ]; then
    echo "path.sh: ${MAIN_ROOT}/tools/venv is missing; run: bash ${MAIN_ROOT}/tools/install.sh" >&2
    exit 1
fi
export PATH=${MAIN_ROOT}/tools/venv/bin:${PATH}
export PYTHONIOENCODING=UTF-8
python=${MAIN_ROOT}/tools/venv/bin/python
