"""tap-dativo-markdown-kv: a singer-sdk tap that reads Markdown-KV files back into records."""

from __future__ import annotations
