"""tap-dativo-markdown-kv: Markdown-KV files (either dialect) to Singer, incremental by
file modification time."""

from __future__ import annotations

from singer_sdk import typing as th

from dativo.file_taps import FileTap
from tap_dativo_markdown_kv.settings import FILES, parse_files
from tap_dativo_markdown_kv.streams import MarkdownKVStream


class TapDativoMarkdownKV(FileTap):
    """Read Markdown-KV files as Singer streams, one stream per configured path or glob."""

    name = "tap-dativo-markdown-kv"

    config_jsonschema = th.PropertiesList(FILES).to_dict()

    def discover_streams(self) -> list[MarkdownKVStream]:
        """One stream per ``files`` entry.

        Raises:
            ConfigError: An entry is inconsistent.
            MarkdownKVError: A file read to infer a schema is malformed.
        """
        return [MarkdownKVStream(self, item) for item in parse_files(self.config)]


if __name__ == "__main__":
    TapDativoMarkdownKV.cli()
