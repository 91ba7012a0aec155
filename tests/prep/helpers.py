"""Helpers shared by the prep tests: the text the notebook's way would produce, file listings, spies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakes.archive import SyntheticArchive
from lambdas.dataset_prep import SEPARATOR


def expected_text(archive: SyntheticArchive, folder: str, names: list[str]) -> bytes:
    """What the notebook wrote (text mode, UTF-8, universal newlines), in the given order."""
    parts = []
    for name in names:
        text = archive.read(f"UK-Abs/{folder}/{name}").decode("utf-8")
        parts.append(text.replace("\r\n", "\n").replace("\r", "\n") + SEPARATOR)
    return "".join(parts).encode("utf-8")


def files_under(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


Hook = Callable[[str, dict[str, Any]], None]


class SpyClient:
    """Wraps a boto3 client: records every call, can fail a chosen call (``fail_on``), and passes each call's name
    and keyword arguments to ``hook`` first (to pause or fail it)."""

    WRITES = frozenset({"put_object", "create_multipart_upload", "upload_part", "complete_multipart_upload"})

    def __init__(
        self, client: Any, fail_on: tuple[str, int] | None = None, key_filter: str = "", hook: Hook | None = None
    ) -> None:
        self._client = client
        self.calls: list[tuple[str, str]] = []
        self._fail_on = fail_on
        self._key_filter = key_filter
        self._hook = hook
        self._counts: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_") or name in ("get_paginator", "meta"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            key = str(kwargs.get("Key", ""))
            self.calls.append((name, key))
            if self._hook is not None:
                self._hook(name, kwargs)
            if self._fail_on and name == self._fail_on[0] and self._key_filter in key:
                self._counts[name] = self._counts.get(name, 0) + 1
                if self._counts[name] == self._fail_on[1]:
                    raise ConnectionResetError(f"injected failure in {name}")
            return attr(*args, **kwargs)

        return call

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in self.WRITES]
