#!/usr/bin/env bash
# Sourced by a recipe script after it has set its default variables: each `--name value` (or
# `--name=value`) on the command line sets the variable `name` (dashes read as underscores).
# Only variables the script already defines can be set, so a misspelt option is an error
# rather than silently ignored. `--help`/`-h` prints the script's leading comment and options.

_parse_options_usage() {
    # the script's leading comment block, which lists its options
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help)
            _parse_options_usage
            exit 0
            ;;
        --*=*)
            _name="${1%%=*}"; _value="${1#*=}"; shift
            ;;
        --*)
            if [ $# -lt 2 ]; then
                echo "$0: option $1 needs a value" >&2
                exit 2
            fi
            _name="$1"; _value="$2"; shift 2
            ;;
        *)
            echo "$0: unexpected argument '$1' (options are --name value)" >&2
            exit 2
            ;;
    esac
    _name="${_name#--}"
    _name="${_name//-/_}"
    if [[ ! "${_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || ! declare -p "${_name}" >/dev/null 2>&1; then
        echo "$0: unknown option --${_name} (see $0 --help)" >&2
        exit 2
    fi
    case "${!_name}|${_value}" in
        true\|true|true\|false|false\|true|false\|false|true\|*|false\|*)
            if [ "${_value}" != true ] && [ "${_value}" != false ]; then
                echo "$0: --${_name} takes true or false, not '${_value}'" >&2
                exit 2
            fi
            ;;
    esac
    printf -v "${_name}" '%s' "${_value}"
done
unset _name _value
