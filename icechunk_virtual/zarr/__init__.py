"""zarr."""
