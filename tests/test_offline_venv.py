"""tools/offline_venv.sh: tools/venv on a machine without network, over the packages of its own
python3 (on the GPU image that is itself a venv), plus carried wheels, plus this repository."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _probe_wheel(directory: Path) -> None:
    """A one-module pure-Python wheel, written by hand: no build backend, no network."""
    files = {
        "offline_probe.py": "WHERE = __file__\n",
        "offline_probe-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: offline-probe\nVersion: 0.1\n",
        "offline_probe-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in [*files, "offline_probe-0.1.dist-info/RECORD"])
    with zipfile.ZipFile(directory / "offline_probe-0.1-py3-none-any.whl", "w") as z:
        for name, text in {**files, "offline_probe-0.1.dist-info/RECORD": record}.items():
            z.writestr(name, text)


def _run(wheels: Path, venv: Path) -> subprocess.CompletedProcess:
    outer = Path(sys.executable).parent  # tools/venv plays the GPU image's own venv
    env = {**os.environ, "ESPNET_PRUNE_VENV": str(venv), "PATH": f"{outer}:{os.environ['PATH']}", "PIP_NO_INDEX": "1"}
    return subprocess.run(["bash", str(REPO / "tools" / "offline_venv.sh"), "--wheels", str(wheels)], env=env, capture_output=True, text=True)


def test_a_venv_over_another_venv_with_carried_wheels(tmp_path):
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    wheels.mkdir()
    _probe_wheel(wheels)
    done = _run(wheels, venv)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    shown = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import offline_probe, torch, espnet_prune; print(offline_probe.WHERE, torch.__file__, espnet_prune.__file__)"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    probe, torch_file, package = shown.stdout.split()
    assert probe.startswith(str(venv))  # the wheel went into the new venv
    assert torch_file.startswith(str(Path(sys.executable).parents[1]))  # torch is the outer environment's
    assert package.startswith(str(REPO))  # this repository, as an editable install would have it
    assert (venv / ".espnet_prune_installed").exists()


def test_no_wheels_is_refused(tmp_path):
    (tmp_path / "wheels").mkdir()
    done = _run(tmp_path / "wheels", tmp_path / "venv")
    assert done.returncode == 2 and "no wheels in" in done.stderr
    assert not (tmp_path / "venv").exists()
