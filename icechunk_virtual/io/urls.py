"""Source URLs in canonical form, so an authorisation check cannot be talked around.

A prefix check on the URL as written is a bypass: ``file:///data/allowed/../secret.bin`` starts
with ``file:///data/allowed/`` and reads ``/data/secret.bin``; ``.../data`` also matched
``.../data-other/``. Every check compares canonical forms instead:

- the scheme lower-cased (a plain path is a ``file://`` URL, made absolute); ``file://localhost/``
  is ``file:///``; an HTTP(S) host lower-cased;
- the path percent-decoded until nothing changes (a server or filesystem that decodes ``%2e%2e``
  or ``%2f`` must not see a different path from the one checked; one that does not decode them
  only makes the check stricter), duplicate slashes collapsed, ``.`` segments dropped and ``..``
  segments applied — one that would climb above the root is refused, not clamped;
- a prefix always ends with ``/``, and a URL is under it if it starts with it (or names exactly
  the file a prefix without its slash named).

Only the checks use the canonical form; the URL a ref records is read as written, and whatever
that reads lies inside what the check saw.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

from icechunk_virtual.errors import UnauthorizedSourceError

__all__ = ["canonical_prefix", "canonical_url", "is_under"]

_DUPLICATE_SLASHES = re.compile(r"/{2,}")
_DECODE_ROUNDS = 8


def canonical_url(url: str) -> str:
    """The canonical form of a source URL (see the module docstring).

    Raises :class:`UnauthorizedSourceError` if a ``..`` segment climbs above the root.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # a plain path
        scheme, rest = "file", os.path.join(os.getcwd(), url) if not url.startswith("/") else url
    scheme = scheme.lower()
    authority, slash, path = rest.partition("/")
    if scheme == "file" and authority.lower() in ("", "localhost"):
        authority = ""
    elif scheme in ("http", "https"):
        authority = authority.lower()
    return f"{scheme}://{authority}{_canonical_path(slash + path, url)}"


def _canonical_path(path: str, url: str) -> str:
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    if not path:
        return ""
    segments = _DUPLICATE_SLASHES.sub("/", path).split("/")[1:]  # (the path starts with "/")
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if not kept:
                raise UnauthorizedSourceError(f"virtual source {url} climbs above its root ('..')")
            kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    directory = segments[-1] in ("", ".", "..") and kept
    return "/" + "/".join(kept) + ("/" if directory else "")


def canonical_prefix(prefix: str) -> str:
    """A prefix as stored and compared: canonical, ending with ``/``."""
    canonical = canonical_url(prefix)
    return canonical if canonical.endswith("/") else canonical + "/"


def is_under(url: str, prefix: str) -> bool:
    """Whether ``url`` lies under ``prefix`` (both canonical; the prefix ends with ``/``)."""
    return url.startswith(prefix) or url + "/" == prefix
