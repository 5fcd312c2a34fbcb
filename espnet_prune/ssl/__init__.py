"""Self-supervised pretraining of the stand-in upstream: HuBERT's masked prediction."""
