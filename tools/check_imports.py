"""What tools/venv must import: tools/install.sh and tools/offline_venv.sh check it after installing."""

import espnet2.bin.asr_inference  # noqa: F401
import espnet2.tasks.asr  # noqa: F401
import hypothesis  # noqa: F401
import jiwer  # noqa: F401
import kaldiio  # noqa: F401
import matplotlib  # noqa: F401
import pytest  # noqa: F401
import s3prl.nn  # noqa: F401
import safetensors  # noqa: F401
import sentencepiece  # noqa: F401
import sklearn  # noqa: F401
import soundfile  # noqa: F401
import tensorboard  # noqa: F401
import torch  # noqa: F401
import torchaudio  # noqa: F401
import xdist  # noqa: F401
import yaml  # noqa: F401

import espnet_prune  # noqa: F401
