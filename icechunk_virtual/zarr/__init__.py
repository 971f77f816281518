"""The zarr face of a session: the Store, our codec pipeline and fast codecs, and the adapters
to zarr's and xarray's private internals (one module each, named for the upstream).
"""

from icechunk_virtual.zarr.read_pipeline import read_config
from icechunk_virtual.zarr.store import IcechunkVirtualStore

__all__ = ["IcechunkVirtualStore", "read_config"]
