"""ESPnet tasks."""
