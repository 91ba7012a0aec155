"""Progress reporting hooks; the default reporter is silent."""

from __future__ import annotations


class Reporter:
    """Receives progress events. Subclass and override what you need; every method is a no-op here."""

    def download(self, done: int, total: int | None) -> None:
        """``done`` bytes of ``total`` (None when the server sends no length) have been received."""

    def retry(self, attempt: int, delay: float, reason: str) -> None:
        """Attempt ``attempt`` failed for ``reason``; the next one starts in ``delay`` seconds."""

    def document(self, output: str, index: int, count: int, name: str) -> None:
        """Document ``index`` (1-based) of ``count`` was written to ``output`` ("train"/"validation")."""

    def info(self, message: str) -> None:
        """A one-line milestone (checksum verified, dataset reused, manifest written...)."""
