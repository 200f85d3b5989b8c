"""vaxvault backup: change capture, staged snapshots and segments, point-in-time restore.

A general PostgreSQL tool: it learns tables, keys and columns from the catalog and never
imports `api`.
"""
