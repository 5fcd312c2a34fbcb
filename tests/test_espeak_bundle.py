"""tools/espeak_bundle.sh: this machine's espeak-ng as a folder for a machine without it (a GPU image),
speaking sample for sample as the installed one, so that a recipe's data stage there makes the same corpus."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SENTENCE = "wake me up at seven thirty tomorrow"


def _speak(espeak: str, env: dict, out: Path) -> bytes:
    subprocess.run([espeak, "-v", "en-us+f3", "-p", "40", "-s", "160", "-w", str(out), SENTENCE], env=env, check=True)
    return out.read_bytes()


def test_the_bundle_speaks_as_the_installed_espeak(tmp_path):
    bundle = tmp_path / "espeak"
    made = subprocess.run(["bash", str(REPO / "tools" / "espeak_bundle.sh"), "--out", str(bundle)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (bundle / "share" / "espeak-ng-data").glob("*_dict")) == ["en_dict"]
    assert not list(bundle.glob(".espeak_bundle.*")) and not list(tmp_path.glob(".espeak_bundle.*"))
    # no system data folder reachable through the environment: the wrapper must bring its own
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    # espeak-ng's first synthesis in a HOME without ~/.config/pulse (which any first call creates)
    # comes out different, run to run; espnet_prune.data.speech calls --version first for the same reason
    subprocess.run([str(bundle / "bin" / "espeak-ng"), "--version"], env=bare, capture_output=True, check=True)
    ours = _speak(str(bundle / "bin" / "espeak-ng"), bare, tmp_path / "bundle.wav")
    installed = _speak("espeak-ng", {**os.environ}, tmp_path / "installed.wav")
    assert len(ours) > 10_000 and ours == installed
    version = subprocess.run([str(bundle / "bin" / "espeak-ng"), "--version"], env=bare, capture_output=True, text=True, check=True).stdout
    assert str(bundle) in version  # its data, not the system's
    voices = [subprocess.run([exe, "--voices=variant"], env=env, capture_output=True, text=True, check=True).stdout
              for exe, env in ((str(bundle / "bin" / "espeak-ng"), bare), ("espeak-ng", {**os.environ}))]
    assert voices[0] == voices[1]


def test_bad_arguments_are_refused_and_an_existing_folder_is_kept(tmp_path):
    script = str(REPO / "tools" / "espeak_bundle.sh")
    unknown = subprocess.run(["bash", script, "--outdir", str(tmp_path / "x")], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown option --outdir" in unknown.stderr
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("x")
    existing = subprocess.run(["bash", script, "--out", str(tmp_path / "kept")], capture_output=True, text=True)
    assert existing.returncode == 2 and "exists" in existing.stderr
    assert (tmp_path / "kept" / "mine.txt").read_text() == "x"
