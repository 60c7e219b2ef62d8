"""tap-dativo-postgres: a singer-sdk SQL tap for PostgreSQL (full table, incremental, CDC)."""

from __future__ import annotations
