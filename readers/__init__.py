"""Format readers: archival files (HDF5, NetCDF, GRIB) to chunk references.

This package knows nothing of the repository; it imports only its own modules and the formats'
libraries.
"""

from readers.registry import open_virtual
from readers.types import VirtualArray, VirtualDataset

__all__ = ["VirtualArray", "VirtualDataset", "open_virtual"]
