"""Source authorisation cannot be talked around: ``..``, ``.``, ``//``, percent-encoded dots and
slashes, mixed-case schemes and missing trailing slashes are all seen through — at
``set_virtual_refs`` and at read, before any I/O.

The property test's oracle is a reference normaliser written independently of
:mod:`icechunk_virtual.io.urls`: ``urllib.parse.unquote`` to a fixed point, a depth count for
escapes, ``posixpath.normpath`` for the path and ``PurePosixPath.is_relative_to`` for "inside",
component by component.
"""

from __future__ import annotations

import posixpath
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.format.manifest_file import ChunkKind
from icechunk_virtual.io.read_path import ChunkRef, ReadPath
from icechunk_virtual.io.sources import check_authorized
from icechunk_virtual.storage import MemoryStorage

ALLOWED = "/data/allowed"


def _reference_inside(url: str, prefix_path: str) -> bool:
    """Whether ``url`` (a file URL) names something inside ``prefix_path``, read the most
    permissive way a filesystem or server could read it; False if it climbs above the root."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "file":
        return False
    host, _, path = rest.partition("/")
    if host.lower() not in ("", "localhost"):
        return False
    previous = None
    path = "/" + path
    while previous != path:
        previous, path = path, unquote(path)
    depth = 0
    for part in path.split("/"):
        depth += {"..": -1, ".": 0, "": 0}.get(part, 1)
        if depth < 0:
            return False
    # (POSIX lets a path start with exactly two slashes mean something else; no URL does)
    resolved = PurePosixPath(posixpath.normpath("/" + path.lstrip("/")))
    return resolved.is_relative_to(PurePosixPath(prefix_path))


def _accepted(url: str, prefix: str) -> bool:
    try:
        check_authorized([url], [prefix], where="test")
    except iv.UnauthorizedSourceError:
        return False
    return True


SEGMENTS = st.sampled_from(
    ["data", "allowed", "allowed-other", "secret.bin", "x", ".", "..", "", "%2e%2e", "%2E",
     "%252e%252e", "..%2f..", "%2fdata", "a%2Fb"]
)  # fmt: skip
SCHEMES = st.sampled_from(["file", "FILE", "File"])
HOSTS = st.sampled_from(["", "localhost", "LocalHost"])


@given(
    scheme=SCHEMES,
    host=HOSTS,
    segments=st.lists(SEGMENTS, max_size=8),
    prefix=st.sampled_from(
        ["file:///data/allowed", "file:///data/allowed/", "FILE://localhost/data//allowed/."]
    ),
)
def test_no_url_outside_the_authorised_prefix_is_accepted(
    scheme: str, host: str, segments: list[str], prefix: str
) -> None:
    url = f"{scheme}://{host}/" + "/".join(segments)
    inside = _reference_inside(url, ALLOWED)
    assert _accepted(url, prefix) == inside, url


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("file:///data/allowed/x.nc", True),
        ("file:///data/allowed/../secret.bin", False),  # the bypass this module closes
        ("file:///data/allowed/%2e%2e/secret.bin", False),
        ("file:///data/allowed/sub/../x.nc", True),
        ("file:///data/allowed-other/x.nc", False),  # a prefix is a directory, not a string
        ("file:///data/allowed", True),  # the directory itself (as a file prefix names a file)
        ("file:///../data/allowed/x.nc", False),  # climbs above the root: refused, not clamped
        ("FILE://localhost//data/./allowed/x.nc", True),
        ("/data/allowed/x.nc", True),  # a plain path is a file URL
        ("s3://data/allowed/x.nc", False),
    ],
)
def test_examples(url: str, accepted: bool) -> None:
    assert _accepted(url, "file:///data/allowed") is accepted


def test_prefixes_are_stored_canonical_with_a_trailing_slash(tmp_path: Path) -> None:
    repo = iv.Repository.create(str(tmp_path / "repo"))
    repo.authorize_virtual_source("FILE://localhost/data//archive/./era5")
    assert repo.virtual_sources == ("file:///data/archive/era5/",)
    assert iv.Repository.open(str(tmp_path / "repo")).virtual_sources == repo.virtual_sources


def _array(session: iv.Session) -> None:
    import zarr

    zarr.create_array(session.store, name="a", shape=(4,), chunks=(4,), dtype="u1", fill_value=0)


def test_set_virtual_refs_and_reads_refuse_an_escaping_source(tmp_path: Path) -> None:
    allowed, secret = tmp_path / "allowed", tmp_path / "secret.bin"
    allowed.mkdir()
    secret.write_bytes(b"\x01\x02\x03\x04")
    escaping = f"file://{allowed}/../secret.bin"
    refs = {"coord": [[0]], "location": [escaping], "offset": [0], "length": [4]}
    repo = iv.Repository.create(str(tmp_path / "repo"))
    repo.authorize_virtual_source(f"file://{allowed}/")
    session = repo.writable_session()
    _array(session)
    with pytest.raises(iv.UnauthorizedSourceError, match="not under an authorised prefix"):
        session.set_virtual_refs("/a", refs)
    # a ref that got in some other way (here: a wider grant since withdrawn) is refused at read,
    # before the file is touched
    reader = ReadPath(iv.Repository.open(str(tmp_path / "repo"))._async.storage,
                      authorized=[f"file://{allowed}"])  # fmt: skip
    ref = ChunkRef(ChunkKind.VIRTUAL, escaping, 0, 4)
    secret.unlink()  # any read attempt would now say "does not exist" instead
    with pytest.raises(iv.UnauthorizedSourceError):
        sync(reader.read(ref, where="array '/a' chunk 0"))
    with pytest.raises(iv.UnauthorizedSourceError):
        sync(ReadPath(MemoryStorage("urls"), authorized=[f"file://{allowed}/"]).read_many(
            [ref], where=["array '/a' chunk 0"]))  # fmt: skip
