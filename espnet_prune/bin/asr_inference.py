"""ESPnet's ASR decoding (``espnet2.bin.asr_inference``, same options) for models trained with
``espnet_prune.bin.asr_train``: importing the task registers the ``s3prl_prune`` frontend and the
``espnet_prune`` model, which ESPnet's ``Speech2Text`` then builds."""

import espnet_prune.tasks.asr  # noqa: F401  (registers the choices)
from espnet2.bin.asr_inference import main

if __name__ == "__main__":
    main()
