from setuptools import find_packages, setup

setup(
    name="espnet_prune",
    version="0.1.0",
    description="Structured pruning of self-supervised speech models (HJ-Pruning) as ESPnet recipes",
    packages=find_packages(include=["espnet_prune", "espnet_prune.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "torchaudio",
        "espnet",
        "espnet-s3prl",
        "sentencepiece",
        "kaldiio",
        "pyyaml",
        "jiwer",
        "rapidfuzz",
        "safetensors",
        "soundfile",
    ],
)
