#!/usr/bin/env bash
# The synthetic recipes' own run.sh flags, sourced as `. utils/synth_modes.sh "$@"`:
#   --ci true|false, --demo true|false (exclusive), --standin ssl|ctc
# Sets ci, demo, standin (empty when not given: each recipe has its own default) and args, the
# options left for asr.sh. Bad values exit 2 before anything runs.
ci=false
demo=false
standin=
args=()
while [ $# -gt 0 ]; do
    if [ "$1" = --ci ] || [ "$1" = --demo ]; then
        [ $# -ge 2 ] && { [ "$2" = true ] || [ "$2" = false ]; } || { echo "$0: $1 takes true or false" >&2; exit 2; }
        if [ "$1" = --ci ]; then ci=$2; else demo=$2; fi
        shift 2
    elif [ "$1" = --standin ]; then
        [ $# -ge 2 ] && { [ "$2" = ssl ] || [ "$2" = ctc ]; } || { echo "$0: --standin takes ssl or ctc" >&2; exit 2; }
        standin=$2
        shift 2
    else
        args+=("$1")
        shift
    fi
done
if [ "${ci}" = true ] && [ "${demo}" = true ]; then
    echo "$0: --ci and --demo are exclusive" >&2
    exit 2
fi
