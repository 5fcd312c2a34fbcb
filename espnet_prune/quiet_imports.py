"""Keep third-party imports off the network and off the screen.

ESPnet's tokenizers import g2p_en, which at import calls ``nltk.download`` (a network fetch into
the user's home) when NLTK's data is missing; ESPnet's attention module prints a notice when
flash-attn (a CUDA package) is absent. ASR and SLU need neither, so both are stopped as those
modules are imported: an import hook, so that importing espnet_prune imports neither package.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import io
import logging
import sys
from types import ModuleType
from typing import Callable

FLASH_NOTICE_MODULE = "espnet.nets.pytorch_backend.transformer.attention"


def _refuse_download(*args, **kwargs) -> bool:
    logging.getLogger(__name__).debug("nltk.download%s refused: espnet_prune makes no network access", args)
    return False


def _quiet_exec(loader: importlib.abc.Loader, module: ModuleType) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        loader.exec_module(module)


def _exec_then_stop_downloads(loader: importlib.abc.Loader, module: ModuleType) -> None:
    loader.exec_module(module)
    module.download = _refuse_download  # g2p_en looks it up as nltk.download when it runs


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, run: Callable[[importlib.abc.Loader, ModuleType], None]) -> None:
        self.loader, self.run = loader, run

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.run(self.loader, module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the modules named in ``HOOKS`` as usual and wraps their loading."""

    HOOKS = {"nltk": _exec_then_stop_downloads, FLASH_NOTICE_MODULE: _quiet_exec}

    def find_spec(self, name, path, target=None):
        if name not in self.HOOKS:
            return None
        sys.meta_path.remove(self)  # the regular finders locate it
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, self.HOOKS[name])
        return spec


def install() -> None:
    """Put the hook in place (once); modules already imported are left as they are."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    if "nltk" in sys.modules:
        sys.modules["nltk"].download = _refuse_download
