"""The upstream as ESPnet and S3PRL use it: ``S3PRLUpstream``'s interface over a prunable model.

:class:`SSLUpstream` is an ``s3prl.nn.S3PRLUpstream`` (same forward: ``(wavs, wavs_len) ->
(hidden states of every layer, their lengths)``) around a model built from a checkpoint here, so
that a gated or shrunk model plugs in wherever S3PRL's upstream does.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
import torch.nn.functional as F
from s3prl.nn.upstream import S3PRLUpstream
from s3prl.upstream.interfaces import UpstreamBase
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from espnet_prune.pruning.arch import UpstreamArch
from espnet_prune.pruning.checkpoint import SSLCheckpoint, build_model, read_checkpoint, save_checkpoint
from espnet_prune.pruning.cost import Cost, upstream_cost
from espnet_prune.pruning.plugin import UpstreamGates
from espnet_prune.pruning.shrink import shrink_upstream


class _ModelExpert(UpstreamBase):
    """S3PRL's wav2vec2/HuBERT/WavLM expert around a model built in memory.

    Like S3PRL's, it returns through hooks the input of every Transformer layer and the
    encoder's output: ``num_layers + 1`` hidden states of shape (B, T, D).
    """

    def __init__(self, model: nn.Module, normalize_waveform: bool, downsample_rate: int) -> None:
        super().__init__()
        self.model = model
        self.normalize_waveform = normalize_waveform
        self.downsample_rate = downsample_rate
        self.model.encoder.layerdrop = 0.0
        for i in range(len(model.encoder.layers)):
            self.add_hook(f"self.model.encoder.layers[{i}]", lambda input, output: input[0].transpose(0, 1))
        self.add_hook("self.model.encoder", lambda input, output: output[0])
        self.hook_postprocess = _trim_to_shortest

    def get_downsample_rates(self, key: str) -> int:
        return self.downsample_rate

    def forward(self, wavs: list[torch.Tensor]) -> None:
        if self.normalize_waveform:
            wavs = [F.layer_norm(wav, wav.shape) for wav in wavs]
        lengths = torch.tensor([len(wav) for wav in wavs], device=wavs[0].device)
        padding_mask = torch.arange(int(lengths.max()), device=lengths.device)[None, :] >= lengths[:, None]
        self.model.extract_features(pad_sequence(wavs, batch_first=True), padding_mask)


def _trim_to_shortest(hiddens: list[tuple[str, torch.Tensor]]) -> list[tuple[str, torch.Tensor]]:
    length = min(h.size(1) for _, h in hiddens)
    return [(name, h[:, :length]) for name, h in hiddens]


class SSLUpstream(S3PRLUpstream):
    """An ``S3PRLUpstream`` over a wav2vec2/HuBERT/WavLM model that can be gated, shrunk and saved.

    forward(wavs (B, L), wavs_len (B,)) -> (list of num_layers+1 tensors (B, T, D), list of (B,) lengths)
    """

    def __init__(self, ckpt: SSLCheckpoint, model: nn.Module) -> None:
        nn.Module.__init__(self)  # S3PRLUpstream.__init__ would load from a hub name instead
        self.ckpt_info = SSLCheckpoint(
            ckpt.model_type, ckpt.task_cfg, ckpt.model_cfg, {}, ckpt.dictionaries_symbols, ckpt.pruned
        )
        self.arch = ckpt.arch
        stride = 1
        for s in self.arch.conv_strides:
            stride *= s
        self.upstream = _ModelExpert(model, bool(ckpt.task_cfg.get("normalize", False)), stride)
        self.normalize = False
        self._num_layers = self.arch.num_layers + 1
        self._hidden_sizes = [self.arch.encoder_dim] * self._num_layers
        self._downsample_rates = [stride] * self._num_layers

    @property
    def model(self) -> nn.Module:
        """The S3PRL ``Wav2Vec2Model`` / ``HubertModel`` inside."""
        return self.upstream.model

    @property
    def gates(self) -> Optional[UpstreamGates]:
        return getattr(self.model, "pruning_gates", None)

    def attach_gates(self, **gate_conf: Any) -> UpstreamGates:
        """Attach :class:`UpstreamGates` (keyword arguments as its constructor's) and return them."""
        gates = UpstreamGates(self.arch, **gate_conf).to(self.model.layer_norm.weight.device)
        gates.attach(self.model)
        return gates

    def shrink(self) -> UpstreamArch:
        """Physically prune by the gates' final masks; the gates are removed."""
        self.arch = shrink_upstream(self.model)
        self.ckpt_info.pruned = self.arch.pruned_dict()
        return self.arch

    def cost(self, seconds: float = 10.0) -> Cost:
        """Exact cost of the current architecture (the dense one while gates are only attached)."""
        return upstream_cost(self.arch, seconds)

    def save(self, path: str | os.PathLike) -> None:
        """Write one safetensors file (weights + configs + per-layer architecture), atomically."""
        save_checkpoint(self.model, self.ckpt_info, self.arch, path)


def load_upstream(path: str | os.PathLike, allow_pickle: bool = False) -> SSLUpstream:
    """Load an upstream checkpoint of any format :func:`read_checkpoint` reads (S3PRL, fairseq,
    transformers directory, espnet_prune safetensors) as an :class:`SSLUpstream` (in train mode)."""
    ckpt = read_checkpoint(path, allow_pickle=allow_pickle)
    return SSLUpstream(ckpt, build_model(ckpt, source=str(path)))
