"""Structured pruning of self-supervised speech models (HJ-Pruning) for ESPnet recipes."""
