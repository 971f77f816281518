"""Object ids: 12 random bytes written in Crockford base32 (20 characters).

Random ids need no coordination between writers, sort nowhere in particular (so S3 spreads them over
partitions) and are short enough for keys and messages. Each kind of object has its own type so a
manifest id can never be passed where a snapshot id is expected.
"""

from __future__ import annotations

import secrets
from typing import Self

__all__ = ["ChunkId", "ManifestId", "ObjectId", "SnapshotId"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_ID_BYTES = 12
_ID_CHARS = 20  # ceil(96 / 5)


def _encode(raw: bytes) -> str:
    number = int.from_bytes(raw, "big")
    chars = []
    for _ in range(_ID_CHARS):
        chars.append(_ALPHABET[number & 31])
        number >>= 5
    return "".join(reversed(chars))


class ObjectId(str):
    """An id of some repository object; use the subclasses."""

    __slots__ = ()

    @classmethod
    def generate(cls) -> Self:
        """A fresh random id."""
        return cls(_encode(secrets.token_bytes(_ID_BYTES)))

    @classmethod
    def parse(cls, text: str) -> Self:
        """Validate ``text`` as an id of this kind.

        Raises
        ------
        InvalidInputError
            ``text`` is not 20 Crockford base32 characters of a 96-bit value.
        """
        from icechunk_virtual.errors import InvalidInputError

        canonical = text.upper() if isinstance(text, str) else ""
        if len(canonical) != _ID_CHARS or any(c not in _DECODE for c in canonical):
            raise InvalidInputError(
                f"{cls.__name__}: {text!r} is not a 20-character Crockford base32 id"
            )
        if _DECODE[canonical[0]] > 0b1111:  # 100 bits of characters carry 96 bits of id
            raise InvalidInputError(f"{cls.__name__}: {text!r} is larger than 96 bits")
        return cls(canonical)

    def to_bytes(self) -> bytes:
        number = 0
        for c in self:
            number = (number << 5) | _DECODE[c]
        return number.to_bytes(_ID_BYTES, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        return cls(_encode(raw))

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self}')"


class SnapshotId(ObjectId):
    """Id of an immutable snapshot (``snapshots/<id>``)."""

    __slots__ = ()


class ManifestId(ObjectId):
    """Id of an immutable Parquet manifest (``manifests/<id>.parquet``)."""

    __slots__ = ()


class ChunkId(ObjectId):
    """Id of an immutable native chunk (``chunks/<id>``)."""

    __slots__ = ()
