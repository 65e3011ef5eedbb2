"""Sync between a person's devices: group membership, sessions, the sync service."""
