"""tap-dativo-google-drive: Drive file metadata and document content, incremental through
Drive's change feed."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from dativo.errors import ConfigError
from dativo.google_auth import GoogleSession, auth_properties
from dativo.resilience import ResiliencePolicy
from dativo.resilience_settings import ResilienceSettings, settings_properties
from dativo.tap_runtime import ObservedTap
from tap_dativo_google_drive.drive import Drive, Selection
from tap_dativo_google_drive.streams import DocumentsStream, FilesStream

DEFAULT_API_ENDPOINT = "https://www.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/drive.readonly",)
DEFAULT_RPS = 10.0  # Drive: 12,000 queries per minute per user, shared with other apps
DEFAULT_MAX_CONTENT_BYTES = 10 * 1024 * 1024
EXTRACTORS = ("none",)  # binary-to-text extractors built so far


def _config_schema() -> dict[str, Any]:
    return th.PropertiesList(
        *auth_properties(),
        th.Property("api_endpoint", th.StringType, default=DEFAULT_API_ENDPOINT,
                    description="Drive API base URL (tests point it at a local server)."),
        th.Property("folder_ids", th.ArrayType(th.StringType),
                    description="Read the files in these folders and every folder under "
                                "them; default every file the credentials can see."),
        th.Property("mime_types", th.ArrayType(th.StringType),
                    description="Only files of these MIME types (e.g. "
                                "application/vnd.google-apps.document, text/csv)."),
        th.Property("name_globs", th.ArrayType(th.StringType),
                    description="Only files whose name matches one of these globs "
                                "(fnmatch, case-sensitive: *.md, Q? report*)."),
        th.Property("max_file_size_bytes", th.IntegerType,
                    description="Skip files larger than this (Google Docs have no size and "
                                "are never skipped by it)."),
        th.Property("max_content_bytes", th.IntegerType, default=DEFAULT_MAX_CONTENT_BYTES,
                    description="documents: keep at most this many bytes of a file's "
                                "content (content_truncated is then true); the download "
                                "is streamed and hashed whole, never held whole in memory."),
        th.Property("extract_binaries", th.StringType, default="none",
                    allowed_values=list(EXTRACTORS),
                    description="Text extractor for PDFs and other binaries; none is built "
                                "yet, so they land with content null."),
        *settings_properties(requests_per_second=DEFAULT_RPS),
    ).to_dict()


class TapDativoGoogleDrive(ObservedTap, Tap):
    """The ``files`` and ``documents`` streams of a Drive selection."""

    name = "tap-dativo-google-drive"
    config_jsonschema = _config_schema()

    @cached_property
    def policy(self) -> ResiliencePolicy:
        """One policy (rate limit, breaker) for every request of the run."""
        return ResiliencePolicy(ResilienceSettings.from_config(
            self.config, requests_per_second=DEFAULT_RPS), metric_labels=self.run_metrics.labels)

    @cached_property
    def drive(self) -> Drive:
        return Drive(GoogleSession(
            self.config, scopes=SCOPES,
            api_endpoint=self.config.get("api_endpoint") or DEFAULT_API_ENDPOINT,
            policy=self.policy))

    @cached_property
    def selection(self) -> Selection:
        """The filters, with the folders walked once per run (shared by both streams)."""
        return self.drive.selection(self.config)

    @cached_property
    def max_content_bytes(self) -> int:
        value = self.config.get("max_content_bytes", DEFAULT_MAX_CONTENT_BYTES)
        if value is None or int(value) < 1:
            raise ConfigError(f"max_content_bytes={value}: must be 1 or more")
        return int(value)

    def discover_streams(self) -> list[Stream]:
        return [FilesStream(self), DocumentsStream(self)]

    def sync_all(self) -> None:
        """Check the settings and walk the folders, sync, then log the request and retry
        counters."""
        extractor = self.config.get("extract_binaries") or "none"
        if extractor not in EXTRACTORS:
            raise ConfigError(f"extract_binaries={extractor!r}: no such extractor (built: "
                              f"{', '.join(EXTRACTORS)}); PDFs and other binaries land with "
                              "content null")
        _ = self.max_content_bytes
        try:
            # Filters checked, folders walked (and credentials tried) before any stream.
            _ = self.selection
            super().sync_all()
        finally:
            self.logger.info("Google Drive requests: %s", self.policy.summary())


if __name__ == "__main__":
    TapDativoGoogleDrive.cli()
