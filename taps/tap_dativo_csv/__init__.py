"""tap-dativo-csv: a singer-sdk tap that reads CSV files, typed by ODCS data contracts."""

from __future__ import annotations
