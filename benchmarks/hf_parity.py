"""Base-size parity with transformers: wav2vec2-base, HuBERT-base and WavLM Base+ architectures.

The tests compare every layer's hidden states with transformers' on tiny models; this does the
same at base size (transformers' default configs, random weights: no download), for one unpadded
and one padded batch, and prints the largest difference relative to each layer's activation
scale (the tests' bound is 1e-4).

    tools/venv/bin/python benchmarks/hf_parity.py [--seconds 4]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
import transformers

from espnet_prune.pruning import load_upstream

MODELS = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel", "wavlm": "WavLMModel"}


def valid_frames(model_type: str, hf_model, lengths: list[int], total: int) -> list[int]:
    """Frames per utterance as the upstream (fairseq) counts them; HuBERT and WavLM mark a frame
    as padding when its whole block of samples is (transformers is given a mask of those frames)."""
    frames = hf_model._get_feat_extract_output_lengths(torch.tensor(lengths)).tolist()
    if model_type == "wav2vec2":
        return frames
    full = int(hf_model._get_feat_extract_output_lengths(torch.tensor(total)))
    block = total // full
    return [min(full, -(-n // block)) for n in lengths]


def worst_relative_difference(model_type: str, seconds: float) -> dict[str, float]:
    cls = getattr(transformers, MODELS[model_type])
    torch.manual_seed(0)
    hf_model = cls(cls.config_class()).eval()
    with tempfile.TemporaryDirectory() as directory:
        hf_model.save_pretrained(directory)
        ours = load_upstream(directory).eval()
    total = round(seconds * 16000)
    lengths = [total, total * 3 // 5]
    wavs = torch.randn(2, total) * 0.3
    wavs[1, lengths[1]:] = 0.0
    result = {}
    for name, batch_lengths in (("unpadded", [total, total]), ("padded", lengths)):
        frames = valid_frames(model_type, hf_model, batch_lengths, total)
        hf_mask = None
        if name == "padded":  # the shortest sample count whose conv output has those frames
            counts = hf_model._get_feat_extract_output_lengths(torch.arange(total + 1))
            samples = [int(torch.nonzero(counts >= n)[0]) for n in frames]
            hf_mask = (torch.arange(total)[None, :] < torch.tensor(samples)[:, None]).long()
        with torch.no_grad():
            out = hf_model(wavs, attention_mask=hf_mask, output_hidden_states=True)
            mine, _ = ours(wavs, torch.tensor(batch_lengths))
        theirs = (*out.hidden_states[:-1], out.last_hidden_state)
        worst = 0.0
        for a, b in zip(mine, theirs):
            scale = float(b.abs().max())
            for i, n in enumerate(frames):
                worst = max(worst, float((a[i, :n] - b[i, :n]).abs().max()) / scale)
        result[name] = worst
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    print("| model (base config) | max diff / scale, unpadded | padded |")
    print("|---|---|---|")
    for model_type in MODELS:
        r = worst_relative_difference(model_type, args.seconds)
        print(f"| {model_type} | {r['unpadded']:.2e} | {r['padded']:.2e} |")


if __name__ == "__main__":
    main()
