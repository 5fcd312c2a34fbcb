"""HuBERT masked-prediction pretraining through ESPnet's trainer: ``python -m espnet_prune.bin.hubert_train``
(ESPnet's common training options, plus ``--model_conf upstream_ckpt=...``; data ``speech`` and ``labels``,
see :mod:`espnet_prune.tasks.hubert`)."""

from espnet_prune.tasks.hubert import HubertPretrainTask


def main(cmd=None) -> None:
    HubertPretrainTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
