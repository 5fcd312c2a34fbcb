"""ESPnet's ASR training with the pruning frontend: ``python -m espnet_prune.bin.asr_train`` (same options
as ``espnet2.bin.asr_train``, plus ``--frontend s3prl_prune`` and ``--model espnet_prune``)."""

from espnet_prune.tasks.asr import ASRPruneTask


def main(cmd=None) -> None:
    ASRPruneTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
