"""Structured pruning of wav2vec2/HuBERT/WavLM upstreams: gates, cost model, shrinking, checkpoints.

No ESPnet imports here. ``load_upstream`` / ``SSLUpstream`` import ``s3prl.nn`` (slow: it loads
S3PRL's whole hub), so they are imported on first use.
"""

from espnet_prune.pruning.arch import UpstreamArch
from espnet_prune.pruning.checkpoint import CheckpointError, build_model, read_checkpoint, save_checkpoint
from espnet_prune.pruning.cost import Cost, UnitCounts, conv_output_lengths, upstream_cost
from espnet_prune.pruning.gates import HardConcreteGate
from espnet_prune.pruning.plugin import UpstreamGates, set_random_keep
from espnet_prune.pruning.shrink import apply_arch_, shrink_upstream

__all__ = [
    "CheckpointError",
    "Cost",
    "HardConcreteGate",
    "SSLUpstream",
    "UnitCounts",
    "UpstreamArch",
    "UpstreamGates",
    "apply_arch_",
    "build_model",
    "conv_output_lengths",
    "load_upstream",
    "read_checkpoint",
    "save_checkpoint",
    "set_random_keep",
    "shrink_upstream",
    "upstream_cost",
]


def __getattr__(name: str):
    if name in ("load_upstream", "SSLUpstream"):
        from espnet_prune.pruning import upstream

        return getattr(upstream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
