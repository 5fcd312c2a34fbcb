"""benchmarks/memory_plan.py on the tiny preset: it measures, fits and plans (the base run is a benchmark)."""

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_memory_plan_measures_fits_and_plans(tmp_path):
    out = tmp_path / "plan.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "memory_plan.py"), "--preset", "tiny", "--grid", "1x1", "1x2",
         "--cnn", "trained", "frozen", "--precisions", "fp32", "--out", str(out)],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    rows = re.findall(r"^\| trained \| fp32 \| 1 x (\d) s \| (\d+) \| (\d+) \| (\d+) \|", text, re.M)
    assert [r[0] for r in rows] == ["1", "2"]
    for _, peak, static, activations in rows:
        assert int(static) > 0 and int(activations) > 0 and abs(int(peak) - int(static) - int(activations)) <= 1
    assert int(rows[1][3]) > int(rows[0][3])  # twice the audio, more activations
    plan = re.search(r"^\| trained \| fp32 \| \d+ \| \d+ \| - \| ([\d,]+) \(\d+ s\) \| ([\d,]+) \(\d+ s\) \| ([\d,]+) \(\d+ s\) \|$", text, re.M)
    assert plan, text
    bins = [int(v.replace(",", "")) for v in plan.groups()]
    assert 0 < bins[0] < bins[1] < bins[2]  # 24, 40, 80 GB
    # a frozen CNN is measured with Transformer-only pruning (gated CNN channels must train): fewer static bytes
    frozen = re.search(r"^\| frozen \| fp32 \| 1 x 1 s \| \d+ \| (\d+) \|", text, re.M)
    assert frozen and int(frozen.group(1)) < int(rows[0][2])
    # the fits file predicts a later measurement (as device_check.sh compares a GPU step with the CPU plan)
    record = json.loads(out.with_suffix(".json").read_text())
    trained = next(f for f in record["fits"] if (f["cnn"], f["precision"]) == ("trained", "fp32"))
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "memory_plan.py"), "--preset", "tiny", "--grid", "2x1",
         "--cnn", "trained", "--precisions", "fp32", "--fits", str(out.with_suffix(".json"))],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    predicted = re.search(r"^\| trained \| fp32 \| 2 x 1 s \| (\d+) \|.*\| (\d+) \| ([\d.]+) \|$", done.stdout, re.M)
    assert predicted, done.stdout
    assert int(predicted.group(2)) == round(trained["a_mb"] + 2 * trained["b_mb_per_s"])
    assert abs(float(predicted.group(3)) - int(predicted.group(1)) / int(predicted.group(2))) < 0.01
