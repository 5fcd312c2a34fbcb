"""ESPnet's ASR training for SLU with pruning: ``python -m espnet_prune.bin.slu_train`` (the options of
``espnet_prune.bin.asr_train``, plus ``--model espnet_prune_slu``, ``--intent_list`` and the data name
``intent``: ``--train_data_path_and_name_and_type data/train/intent,intent,text``)."""

from espnet_prune.tasks.slu import SLUPruneTask


def main(cmd=None) -> None:
    SLUPruneTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
