"""One line per FLAC under a folder: its path, sample rate, length and the md5 of its decoded samples
(not of the file: FLAC encoders write their own version into it). Two machines synthesised the same
corpus when their lists are equal (benchmarks/device_slu_sweep.sh compares them).

    python benchmarks/audio_md5.py downloads/synth_slurp_small_seed0/audio > audio_md5.txt
"""

import hashlib
import sys
from pathlib import Path

import soundfile


def main(root: Path) -> None:
    for path in sorted(root.rglob("*.flac")):
        samples, rate = soundfile.read(path, dtype="int16")
        print(path.relative_to(root), rate, len(samples), hashlib.md5(samples.tobytes()).hexdigest())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
