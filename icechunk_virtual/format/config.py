"""``config.json``: the repository's settings, written once at creation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from icechunk_virtual.errors import FormatError, InvalidInputError

__all__ = ["CONFIG_KEY", "FORMAT_VERSION", "RepositoryConfig"]

CONFIG_KEY = "config.json"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class RepositoryConfig:
    """Settings every writer of a repository must agree on, so they live in the repository."""

    manifest_split_rows: int = 25_000
    """At most this many chunk refs per manifest file; reading one chunk loads one such file."""
    inline_chunk_threshold_bytes: int = 512
    """Native chunks up to this size are kept in the manifest instead of a file of their own."""
    virtual_sources: tuple[str, ...] = field(default=())
    """URL prefixes virtual chunks may be read from (credentials are never stored here)."""

    def __post_init__(self) -> None:
        if not isinstance(self.manifest_split_rows, int) or self.manifest_split_rows < 1:
            raise InvalidInputError(
                f"manifest_split_rows must be a positive integer, got {self.manifest_split_rows!r}"
            )
        if self.inline_chunk_threshold_bytes < 0:
            raise InvalidInputError(
                "inline_chunk_threshold_bytes must be >= 0, "
                f"got {self.inline_chunk_threshold_bytes!r}"
            )
        object.__setattr__(self, "virtual_sources", tuple(self.virtual_sources))

    def to_bytes(self) -> bytes:
        document: dict[str, Any] = {"format_version": FORMAT_VERSION, **asdict(self)}
        document["virtual_sources"] = list(self.virtual_sources)
        return json.dumps(document, indent=2).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str) -> RepositoryConfig:
        try:
            document = json.loads(data)
            version = document.pop("format_version")
            if version != FORMAT_VERSION:
                raise FormatError(
                    f"{where}: repository format {version} is not supported "
                    f"(this icechunk_virtual reads format {FORMAT_VERSION})"
                )
            return cls(**document)
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"{where}: config.json does not parse: {exc}") from exc
