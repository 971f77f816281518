"""Framing of a GRIB file: where each message starts and how long it is, from the headers alone
(GRIB 1 and 2), so a file is split into messages without decoding any.
"""

from __future__ import annotations

import struct

from readers.errors import CorruptFileError, UnsupportedFeatureError

__all__ = ["message_spans"]

_GRIB1_LARGE = 0x800000
"""GRIB1's flag, in the 3-byte length, of a message longer than 8 MB."""


def message_spans(url: str, data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every message; bytes between and after messages are skipped."""
    spans: list[tuple[int, int]] = []
    position = data.find(b"GRIB")
    while position != -1:
        index = len(spans)
        if position + 16 > len(data):
            raise CorruptFileError(url, position, f"GRIB message {index} is truncated")
        edition = data[position + 7]
        if edition == 2:
            (length,) = struct.unpack_from(">Q", data, position + 8)
        elif edition == 1:
            length = int.from_bytes(data[position + 4 : position + 7], "big")
            if length & _GRIB1_LARGE:
                length = _grib1_large_length(url, data, position, index)
        else:
            raise UnsupportedFeatureError(url, f"message {index}", f"GRIB edition {edition}")
        end = position + length
        if length < 16 or end > len(data) or data[end - 4 : end] != b"7777":
            raise CorruptFileError(
                url, position, f"GRIB message {index} does not end where its length says"
            )
        spans.append((position, length))
        position = data.find(b"GRIB", end)
    return spans


def _grib1_large_length(url: str, data: bytes, position: int, index: int) -> int:
    """GRIB1 messages over 8 MB flag their length; ecCodes knows the rule, so ask it."""
    import eccodes

    try:
        handle = eccodes.codes_new_from_message(data[position:])
    except Exception as exc:  # ecCodes raises its own error tree
        raise CorruptFileError(url, position, f"GRIB message {index}: {exc}") from exc
    try:
        return int(eccodes.codes_get(handle, "totalLength"))
    finally:
        eccodes.codes_release(handle)
