"""chunk_refs."""
