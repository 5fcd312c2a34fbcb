"""ESPnet ASR models."""
