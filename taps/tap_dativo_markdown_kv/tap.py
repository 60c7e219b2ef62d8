"""tap-dativo-markdown-kv: Markdown-KV files (either dialect) to Singer, incremental by
file modification time."""

from __future__ import annotations

from singer_sdk import typing as th

from dativo.file_taps import FileTap, files_setting
from tap_dativo_markdown_kv.settings import DIALECT_SETTINGS, EMITS, parse_files
from tap_dativo_markdown_kv.streams import MarkdownKVStream

_ENTRY_PROPERTIES = (  # after entity and path, see files_setting
    th.Property("dialect", th.StringType, default="auto", allowed_values=list(DIALECT_SETTINGS),
                description="`record_blocks` (`## Record <id>` + fenced `key: value`), "
                            "`sectioned` (front matter, `# sections`, `key:: value`), or "
                            "`auto`: detected per file."),
    th.Property("emit", th.StringType, default="records", allowed_values=list(EMITS),
                description="`records`: one record per `## Record` block, or per sectioned "
                            "document. `row_per_kv`: one row per key (doc_id, section, key, "
                            "value, value_json, ord)."),
    th.Property("keys", th.ArrayType(th.StringType),
                description="Primary-key columns of `records` (e.g. [_sdc_doc_id]); "
                            "row_per_kv is keyed by (doc_id, section, key)."),
    th.Property("schema", th.ObjectType(additional_properties=True),
                description="Declared JSON Schema per key ({\"id\": {\"type\": "
                            "[\"integer\"]}}), in column order. Default: inferred from "
                            "every matching file. A key outside it fails the run."),
    th.Property("encoding", th.StringType, default="utf-8",
                description="Python codec name of the files. A UTF-8 byte-order mark is "
                            "ignored."),
)


class TapDativoMarkdownKV(FileTap):
    """Read Markdown-KV files as Singer streams, one stream per configured path or glob."""

    name = "tap-dativo-markdown-kv"

    config_jsonschema = th.PropertiesList(
        files_setting(*_ENTRY_PROPERTIES, streams="Markdown-KV",
                      keys="dialect (auto | record_blocks | sectioned), emit (records | "
                           "row_per_kv), keys, schema (declared JSON Schema per key; default "
                           "inferred from the files), encoding. See docs/tap-markdown-kv.md."),
    ).to_dict()

    def discover_streams(self) -> list[MarkdownKVStream]:
        """One stream per ``files`` entry.

        Raises:
            ConfigError: An entry is inconsistent.
            MarkdownKVError: A file read to infer a schema is malformed.
        """
        return [MarkdownKVStream(self, item)
                for item in parse_files(self.config, self.config_jsonschema)]


if __name__ == "__main__":
    TapDativoMarkdownKV.cli()
