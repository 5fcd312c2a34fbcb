"""Structured pruning of self-supervised speech models (HJ-Pruning) for ESPnet recipes."""

from espnet_prune import quiet_imports

quiet_imports.install()
