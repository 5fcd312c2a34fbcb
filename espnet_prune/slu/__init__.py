"""Spoken language understanding: SLURP's metrics."""
