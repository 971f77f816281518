"""URL helpers shared by the readers."""

from __future__ import annotations

__all__ = ["local_path"]


def local_path(url: str) -> str | None:
    """The path of a local file given as a path or ``file://`` URL; ``None`` for other URLs.
    Local files are opened directly: the format libraries read them far faster than through a
    Python file object."""
    if "://" not in url:
        return url
    return url.removeprefix("file://") if url.startswith("file://") else None
