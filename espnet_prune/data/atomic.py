"""Files and directories that appear only when complete: built beside their final place, then renamed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside `final`; on success it replaces `final`.

    The temporary directory is on the same file system, so the final step is a rename: readers see
    the old directory, or the complete new one, never a half-written one. On any error (or
    interruption) the temporary directory is removed and `final` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        _chmod_as_new_directory(tmp)
        yield tmp
        _replace_directory(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temporary file path beside `final`; on success it replaces `final` (see atomic_directory)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _chmod_as_new_directory(path: Path) -> None:
    # mkdtemp makes 0700 directories; outputs should get the usual permissions (0777 minus umask).
    path.chmod(0o777 & ~_umask())


def _replace_directory(new: Path, final: Path) -> None:
    if not final.exists():
        new.rename(final)
        return
    # A directory cannot be renamed over a non-empty one: move the old one aside first.
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
    old.rmdir()
    final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
