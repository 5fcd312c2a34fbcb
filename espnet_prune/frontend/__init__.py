"""ESPnet frontends."""
