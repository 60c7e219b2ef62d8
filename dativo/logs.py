"""Log format (JSON or text) and secret redaction for every dativo plugin.

Redaction happens in a filter on the root handlers, after a record's message and any
traceback are rendered, so no code path (ours, singer-sdk's, pyiceberg's exception
texts) can print a secret: the values of settings marked secret or named like one,
passwords inside URIs/DSNs, and strings shaped like API keys or bearer tokens.

A second filter keeps every error one line: a traceback (ours or a library's, such as
SQLAlchemy's pool logging a failed reset) is only printed when the root logger is at
DEBUG (``LOGLEVEL=DEBUG``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args
from urllib.parse import unquote, urlparse

from dativo.errors import ConfigError

LogFormat = Literal["text", "json"]
MASK = "***"
SECRET_KEY = re.compile(r"secret|password|passwd|token|credential|private|api_?key",
                        re.IGNORECASE)
_KEYED = re.compile(
    r"(?P<key>(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)[\"']?)"
    r"(?P<sep>\s*[:=]\s*)"
    r"(?:(?P<quote>[\"'])(?P<quoted>(?:(?!(?P=quote))[^\n])*)(?P=quote)"
    r"|(?P<value>[^\s\"',&;)}]+))",
    re.IGNORECASE)
_PROSE = re.compile(r"[a-z]+")
_MORE_PROSE = re.compile(r"\s+\(?[a-z]")
_PATTERNS = (
    # user:password@ in a URI or DSN; a scheme is tried only where one can start, so a
    # long run of letters (a big STATE in the run summary) is scanned once, not n times
    (re.compile(r"(?P<keep>(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)"
                r"[^@\s\"',/]{1,256}(?=@)"), r"\g<keep>***"),
    (re.compile(r"(?P<keep>\bBearer\s+)\S+", re.IGNORECASE), r"\g<keep>***"),
    (re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{8,}"), MASK),  # Stripe keys
    (re.compile(r"\bpat-[a-z0-9]{2,4}-[0-9a-f-]{30,}"), MASK),  # HubSpot private app
)
_REGISTERED: tuple[str, ...] = ()
"""The process's secrets, longest first (:func:`register_secrets`): every redactor masks
them, so a command that never calls :func:`configure` (``dativo``) is covered too."""
NUMERIC_SECRET_DIGITS = 6
"""A secret setting given as a number is masked from this many digits (shorter ones
would mask counts and years in ordinary log lines)."""


def _mask_keyed(match: re.Match[str]) -> str:
    """``password=...``, ``"token": "..."``, ``api_key: ...``: mask the value.

    Not prose: in ``api_key: set a valid key`` the unquoted lower-case word after
    ``key: `` is the start of a sentence, not a value (a value has digits, capitals
    or symbols, is quoted, follows ``=`` or a colon without a space, or is not followed
    by another word: ``password: letmein`` is masked)."""
    key, sep = match["key"], match["sep"]
    if match["quote"] is not None:
        return f"{key}{sep}{match['quote']}{MASK}{match['quote']}"
    if (sep.strip() == ":" and sep != ":" and _PROSE.fullmatch(match["value"])
            and _MORE_PROSE.match(match.string, match.end())):
        return match[0]
    return f"{key}{sep}{MASK}"


def secret_values(config: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> set[str]:
    """Every secret in ``config``: values of ``secret_keys`` (settings marked secret)
    or of keys named like secrets, at any depth, and passwords inside URI values."""
    marked = set(secret_keys)
    found: set[str] = set()

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, int) and not isinstance(value, bool):
            if (key in marked or SECRET_KEY.search(key)) and \
                    len(str(abs(value))) >= NUMERIC_SECRET_DIGITS:
                found.add(str(value))  # a password given as a number (73519264)
        elif isinstance(value, str) and value:
            if key in marked or SECRET_KEY.search(key):
                found.add(value)
            try:
                password = urlparse(value).password
            except ValueError:
                password = None
            if password:
                found.update((password, unquote(password)))

    walk(config, "")
    return {s for s in found if len(s) >= 4}  # shorter values would mask ordinary text


class SecretRedactor(logging.Filter):
    """Replaces secrets in the rendered message and traceback of every record: its own
    ``secrets`` and every one registered with :func:`register_secrets`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def redact(self, text: str) -> str:
        secrets = (sorted({*self.secrets, *_REGISTERED}, key=len, reverse=True)
                   if self.secrets else _REGISTERED)
        for secret in secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return _KEYED.sub(_mask_keyed, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def redact_secrets(text: str, config: Mapping[str, Any]) -> str:
    """``text`` without ``config``'s secrets (:func:`secret_values`) and without what
    every redactor masks: for a message built before logging sees it (an error)."""
    return SecretRedactor(secret_values(config)).redact(text)


def redact(text: str) -> str:
    """``text`` without the process's registered secrets and what every redactor masks:
    for output that does not go through logging (the ``dativo`` command's stderr)."""
    return SecretRedactor().redact(text)


def register_secrets(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` in every redactor of this process from now on: the log filter,
    :func:`dativo.exit_codes.echoed` and anything else that redacts, including secrets
    learnt after start-up (those of a catalog opened from a config file)."""
    global _REGISTERED
    _REGISTERED = tuple(sorted({*_REGISTERED, *secrets}, key=len, reverse=True))


class TracebackOnlyAtDebug(logging.Filter):
    """Drops the traceback of records below DEBUG verbosity: every error is one line.

    Our own handlers already attach a traceback only at DEBUG; this holds libraries to
    the same rule (SQLAlchemy's pool logs ``exc_info`` when it cannot reset a
    connection the server killed). ``LOGLEVEL=DEBUG`` brings them all back.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.exc_info or record.exc_text or record.stack_info) and \
                not logging.getLogger().isEnabledFor(logging.DEBUG):
            record.exc_info = record.exc_text = record.stack_info = None
        return True


def configure(*, secrets: Iterable[str] = (), log_format: LogFormat = "text") -> None:
    """Install redaction, one-line errors (and the JSON formatter, if asked) on every
    root handler; calling it again replaces the filters it installed before."""
    if log_format not in get_args(LogFormat):
        raise ConfigError(f"log_format: {log_format!r} must be one of {list(get_args(LogFormat))}")
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()
    register_secrets(secrets)
    redactor = SecretRedactor()
    for handler in root.handlers:
        for old in [f for f in handler.filters
                    if isinstance(f, SecretRedactor | TracebackOnlyAtDebug)]:
            handler.removeFilter(old)
        handler.addFilter(TracebackOnlyAtDebug())  # before the redactor renders it
        handler.addFilter(redactor)
        if log_format == "json":
            from singer_sdk.logging import StructuredFormatter

            handler.setFormatter(StructuredFormatter())
