"""Speech corpora: Kaldi/ESPnet data directories from LibriSpeech and SLURP, and a generator of
small synthetic corpora (espeak-ng speech) in exactly those corpora's on-disk layouts.

Modules:
    errors       -- DataPrepError and the --skip-bad policy (BadInputLog)
    atomic       -- outputs that appear only when complete
    audio        -- cheap header check of audio files
    datadir      -- writing, reading and validating Kaldi data directories
    librispeech  -- LibriSpeech layout: SPEAKERS.TXT, *.trans.txt, data prep
    slurp        -- SLURP layout: jsonl records, `[type : filler]` annotations, SLU targets, data prep
    speech       -- espeak-ng voices and rendering text to 16 kHz FLAC
    grammar      -- the LibriSpeech-style sentence grammar
    slurp_grammar -- the SLURP-style command grammar (scenarios, intents, slots)
    synth        -- the synthetic corpus generator (both layouts)
    cli          -- what the command-line tools in espnet_prune.bin share
"""
