"""The on-disk layout: config, snapshots, manifests, refs and transaction logs.

Every object but the branch refs is immutable and named by a random id; see DESIGN.md.
"""
