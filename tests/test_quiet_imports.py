"""Importing the toolkit's tasks makes no network attempt and prints no notices (issue 17)."""

import subprocess
import sys

PROBE = """
import socket
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args[:1])
    raise OSError("no network in this test")
socket.getaddrinfo = refuse
socket.socket.connect = refuse
import espnet_prune.tasks.asr, espnet_prune.tasks.slu
import espnet2.bin.asr_inference  # what asr_decode runs
import g2p_en  # the package that would fetch NLTK data at import
print("network attempts:", attempts)
"""


def test_importing_the_tasks_is_offline_and_quiet():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines() == ["network attempts: []"], done.stdout
    assert "nltk_data" not in done.stderr and "Flash Attention" not in done.stderr
