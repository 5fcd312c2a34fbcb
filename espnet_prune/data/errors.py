"""Bad-input errors and the policy for them (raise, or with --skip-bad log, count and go on)."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


class DataPrepError(ValueError):
    """Bad input met while preparing a corpus; the message names the file and, if known, the line."""

    def __init__(self, reason: str, path: str | Path | None = None, line: int | None = None) -> None:
        self.reason = reason
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(f"{self.location}: {reason}" if self.location else reason)

    @property
    def location(self) -> str:
        """`file:line`, `file`, or "" when the error is not tied to a file."""
        if self.path is None:
            return ""
        return self.path if self.line is None else f"{self.path}:{self.line}"


class BadInputLog:
    """Decides what bad input does: raise it, or (skip_bad) log it, count it and carry on."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: list[DataPrepError] = []

    def report(self, error: DataPrepError) -> None:
        """Raise `error`, or record it when skipping bad input."""
        if not self.skip_bad:
            raise error
        logger.warning("skipped bad input: %s", error)
        self.skipped.append(error)

    @property
    def count(self) -> int:
        return len(self.skipped)
