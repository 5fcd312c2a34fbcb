"""``espnet_prune.bin.asr_shrink`` for models trained with ``espnet_prune.bin.slu_train`` (same options):
importing the SLU task registers the ``espnet_prune_slu`` model that the shrink step rebuilds."""

import espnet_prune.tasks.slu  # noqa: F401  (registers the model choice)
from espnet_prune.bin.asr_shrink import main

if __name__ == "__main__":
    main()
