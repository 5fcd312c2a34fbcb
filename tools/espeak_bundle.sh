#!/usr/bin/env bash
# This machine's espeak-ng as a folder another Linux x86-64 machine can run without installing it (a
# GPU image without espeak-ng and without network): the binary, the shared libraries it loads
# (glibc's own left out: the target has them), and its data with only the dictionaries of the
# named languages. The same binary and data synthesise the synthetic corpora sample for sample, so
# a recipe's data stage on that machine makes the corpus this one makes.
#   bash tools/espeak_bundle.sh --out DIR [--languages "en"]
#   there: export PATH=DIR/bin:$PATH
# (espeak-ng's very first synthesis in a HOME without ~/.config/pulse differs run to run;
# espnet_prune.data.speech makes one --version call per process first, which creates it)
set -euo pipefail

out=
languages=en
while [ $# -gt 0 ]; do
    case "$1" in
        --out|--languages)
            [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 2; }
            [ "$1" = --out ] && out=$2 || languages=$2
            shift 2 ;;
        *) echo "$0: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ -n "${out}" ] || { echo "$0: give --out DIR" >&2; exit 2; }
[ ! -e "${out}" ] || { echo "$0: ${out} exists; give a new folder" >&2; exit 2; }
binary=$(command -v espeak-ng) || { echo "$0: no espeak-ng on PATH to bundle" >&2; exit 1; }
data=$(espeak-ng --version | sed -n 's/.*Data at: //p')
[ -d "${data}" ] || { echo "$0: espeak-ng names no data folder ('${data}')" >&2; exit 1; }

tmp=$(mktemp -d "$(dirname "${out}")/.espeak_bundle.XXXXXX")
trap 'rm -rf "${tmp}"' EXIT
mkdir -p "${tmp}/bin" "${tmp}/lib" "${tmp}/share"
cp "$(readlink -f "${binary}")" "${tmp}/bin/espeak-ng.bin"
ldd "${binary}" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | while read -r lib; do
    case "$(basename "${lib}")" in
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*) ;;
        *) cp -L "${lib}" "${tmp}/lib/" ;;
    esac
done
cp -r "${data}" "${tmp}/share/espeak-ng-data"
for dict in "${tmp}"/share/espeak-ng-data/*_dict; do
    [[ " ${languages} " == *" $(basename "${dict}" _dict) "* ]] || rm "${dict}"
done
cat > "${tmp}/bin/espeak-ng" <<'WRAP'
#!/bin/sh
# the bundled espeak-ng with its own libraries and data (made by tools/espeak_bundle.sh)
here=$(dirname "$(readlink -f "$0")")/..
LD_LIBRARY_PATH="$here/lib" ESPEAK_DATA_PATH="$here/share" exec "$here/bin/espeak-ng.bin" "$@"
WRAP
chmod +x "${tmp}/bin/espeak-ng"
"${tmp}/bin/espeak-ng" --version > /dev/null
mv "${tmp}" "${out}"
trap - EXIT
echo "[espeak_bundle] ${out}: $(du -sh "${out}" | cut -f1), languages: ${languages} ($(ls "${out}/lib" | wc -l) libraries)"
