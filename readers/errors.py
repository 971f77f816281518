"""The readers' own errors; ``icechunk_virtual.ingest`` re-raises them under its error tree."""

from __future__ import annotations

from typing import Any

__all__ = ["CorruptFileError", "ReaderError", "UnsupportedFeatureError"]


class ReaderError(Exception):
    """Base of every reader error; names the file."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(f"{url}: {message}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # rebuilt from the constructor's arguments, so errors cross process boundaries intact
        return (type(self), (self.url, self.message))


class UnsupportedFeatureError(ReaderError):
    """The file uses something the reader cannot express as chunk references."""

    def __init__(self, url: str, variable: str, feature: str) -> None:
        self.variable = variable
        self.feature = feature
        super().__init__(url, f"variable '{variable}': {feature} is not supported")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.url, self.variable, self.feature))


class CorruptFileError(ReaderError):
    """The file's bytes do not parse as its format claims."""

    def __init__(self, url: str, offset: int | None, detail: str) -> None:
        self.offset = offset
        self.detail = detail
        where = f" (at byte {offset})" if offset is not None else ""
        super().__init__(url, f"{detail}{where}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.url, self.offset, self.detail))
