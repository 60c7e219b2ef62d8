"""JSON Schema validation errors as messages that quote no secret and no file.

jsonschema's own messages start with the offending value: ``'lenient' is not one of
['strict', 'warn']`` helps, but ``73519264 is not of type 'string'`` prints a password,
and an object's message prints the whole object (a file's lines, when a setting points
at the wrong file). :func:`describe` keeps jsonschema's wording for a short scalar of an
ordinary setting and otherwise names only the expectation: the type, the choices, the
pattern. Secret means declared ``secret: true`` or named like a secret
(:data:`dativo.logs.SECRET_KEY`). :func:`validate_config` is the config check every
dativo plugin (taps and target) runs in place of singer-sdk's.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import json
import sys
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import ValidationError

from dativo.errors import ConfigError
from dativo.logs import SECRET_KEY
from dativo.names import tenant_problem

QUOTE_LIMIT = 40
"""Longest string value quoted back in a message (a file path or a choice fits)."""
KEYS_LISTED = 3
"""Unexpected keys named in a message; more are counted, not listed."""


def describe(error: ValidationError, *, where: str | None = None) -> str:
    """One validation error as a message; ``where`` defaults to ``in config[...]``.

    Args:
        error: The error, as ``iter_errors`` yields it.
        where: How to name the location, e.g. ``schema[0].name:`` for a contract.
    """
    location = where if where is not None else config_location(error.absolute_path)
    if error.validator == "required":  # names the schema's key, quotes no value
        text = error.message
    elif error.validator == "additionalProperties":
        text = _unexpected_keys(error)
    elif not is_secret(error) and _quotable(error.instance):
        text = error.message
    else:
        text = f"{_subject(error)} {_expectation(error)}"
    return f"{location}: {text}" if where is not None else f"{text}{location}"


def config_location(path: Sequence[Any]) -> str:
    """singer-sdk's wording: `` in config['metrics']['port']``."""
    if not path:
        return ""
    return " in config[" + "][".join(repr(part) for part in path) + "]"


def is_secret(error: ValidationError) -> bool:
    """The value is a secret: its schema says so, or a key on its path is named like one."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    return bool(schema.get("secret")) or any(
        isinstance(part, str) and SECRET_KEY.search(part) for part in error.absolute_path)


def _quotable(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= QUOTE_LIMIT and "\n" not in value
    return value is None or isinstance(value, bool | int | float)


def json_type_name(value: Any) -> str:
    """The JSON type of a decoded value, for messages that must not quote it."""
    for kind, names in ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                        (str, "a string"), (dict, "an object"), (list, "an array")):
        if isinstance(value, kind):
            return names
    return "null" if value is None else type(value).__name__


def _subject(error: ValidationError) -> str:
    kind = json_type_name(error.instance)
    if is_secret(error):
        return f"{kind} (not shown: the setting is secret)"
    if isinstance(error.instance, str):
        return f"a string of {len(error.instance)} characters (not shown)"
    return f"{kind} (not shown)"


def _expectation(error: ValidationError) -> str:
    """What the schema wanted, from the schema alone (never from the value)."""
    rule, wanted = error.validator, error.validator_value
    if rule == "type":
        types = wanted if isinstance(wanted, list) else [wanted]
        return "is not of type " + ", ".join(repr(t) for t in types)
    if rule == "enum":
        return f"is not one of {list(wanted)!r}"
    if rule == "const":
        return f"is not {wanted!r}"
    if rule == "pattern":
        return f"does not match {wanted!r}"
    if rule == "format":
        return f"is not a valid {wanted}"
    if rule in ("anyOf", "oneOf"):
        return "matches none of the allowed forms"
    return f"fails the schema's {rule} {wanted!r} rule" if _quotable(wanted) else (
        f"fails the schema's {rule} rule")


def _unexpected_keys(error: ValidationError) -> str:
    """The first few unexpected keys, each cut short: keys are names, not values, but
    the keys of a file that is no YAML document of ours are its lines."""
    declared = set((error.schema or {}).get("properties", {})) if isinstance(
        error.schema, dict) else set()
    extra = [k for k in (error.instance or {}) if k not in declared] if isinstance(
        error.instance, dict) else []
    return "unexpected key(s) " + clipped_list(extra)


def clipped_list(names: Iterable[Any]) -> str:
    """``'a', 'b', 'c' and 4 more``, each name cut to :data:`QUOTE_LIMIT` characters."""
    texts = [str(n) for n in names]
    shown = ", ".join(repr(clip(t)) for t in texts[:KEYS_LISTED])
    more = len(texts) - KEYS_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` on one line and at most ``limit`` characters (``...`` marks a cut)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def config_problems(plugin: Any, config: dict[str, Any]) -> list[str]:
    """singer-sdk's config check (the same validator, so defaults are filled in), with
    messages from :func:`describe`: a secret's value, a long
    value or an object is never quoted back. Also refused: a top-level key the plugin
    does not declare (a typo would otherwise silently leave the setting at its default)
    and a ``tenant_id`` the target would refuse (:func:`dativo.names.tenant_problem`)."""
    from singer_sdk.plugin_base import JSONSchemaValidator  # the plugin's own validator

    schema = plugin.config_jsonschema
    plugin.append_builtin_config(schema)
    problems = [_required_setting(plugin, error) if _is_missing_setting(error)
                else describe(error)
                for error in JSONSchemaValidator(schema).iter_errors(config)]
    problems.extend(unknown_settings(plugin.name, schema, config))
    problems.extend(date_problems(schema, config))
    base = config.get("api_base")
    if isinstance(base, str) and not base.startswith(("http://", "https://")):
        problems.append("api_base: must be an http:// or https:// URL (a request to "
                        "anything else fails, and would be retried until the run times out)")
    tenant = config.get("tenant_id")
    if tenant is not None and (problem := tenant_problem(tenant)) is not None:
        problems.append(f"tenant_id: {problem}")
    return problems


def null_to_defaults(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Replace, in place, each top-level ``null`` whose setting has a default with that
    default. The schema accepts an explicit null (Meltano sends declared but unset
    settings so), but singer-sdk's validator fills in defaults only for missing keys:
    without this, ``fetch_rows: null`` fails with a TypeError and a null slot prefix
    names a replication slot ``None_...``."""
    for key, setting in schema.get("properties", {}).items():
        if key in config and config[key] is None and "default" in setting:
            config[key] = copy.deepcopy(setting["default"])


def date_problems(schema: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Top-level ``date-time`` and ``date`` settings (``start_date``) that are no ISO
    8601 value: singer-sdk's validator checks no ``format``, so a typo would otherwise
    fail mid-run as an unexpected error (exit 1)."""
    problems = []
    for key, prop in (schema.get("properties") or {}).items():
        value, kind = config.get(key), (prop or {}).get("format")
        if kind not in ("date-time", "date") or not isinstance(value, str):
            continue
        try:
            (dt.datetime if kind == "date-time" else dt.date).fromisoformat(value)
        except ValueError:
            example = "2024-01-31T00:00:00Z" if kind == "date-time" else "2024-01-31"
            shown = repr(value) if _quotable(value) else "the value"
            problems.append(f"{key}: {shown} is not an ISO 8601 {kind} (e.g. {example})")
    return problems


@cache
def sdk_builtin_settings() -> frozenset[str]:
    """Every setting singer-sdk itself defines (stream maps, flattening, batch_config,
    load_method, ...), whatever the plugin's capabilities: a config shared between
    plugins, or written for any SDK plugin, may hold them."""
    from singer_sdk.helpers import capabilities

    return frozenset(key for value in vars(capabilities).values()
                     if isinstance(value, dict) and isinstance(value.get("properties"), dict)
                     for key in value["properties"])


def unknown_settings(plugin_name: str, schema: dict[str, Any],
                     config: dict[str, Any]) -> list[str]:
    """One problem per top-level key that is neither declared nor singer-sdk's own,
    with the closest declared name (:mod:`difflib`) when there is one."""
    known = set(schema.get("properties") or {}) | sdk_builtin_settings()
    problems = []
    for key in config:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), sorted(known), n=1)
        fix = (f"did you mean {close[0]!r}?" if close else
               f"remove it (`{plugin_name} --about` lists every setting)")
        problems.append(f"unknown setting {clip(str(key))!r} in {config_file_of(key)}; {fix}")
    return problems


def config_file_of(key: str) -> str:
    """The ``--config`` file that sets ``key`` (the last one, as later files win), for
    messages; ``the config`` when it is not known."""
    for path in reversed(_config_paths(sys.argv[1:])):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and key in data:
            return path
    return "the config"


def _config_paths(argv: Sequence[str]) -> list[str]:
    paths = []
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    return [p for p in paths if p != "ENV"]


def _is_missing_setting(error: ValidationError) -> bool:
    return error.validator == "required" and not error.absolute_path


def _required_setting(plugin: Any, error: ValidationError) -> str:
    """``'files' is a required property`` with where to add it."""
    missing = [key for key in error.validator_value if key not in (error.instance or {})]
    names = ", ".join(repr(key) for key in missing) or error.message
    return (f"required setting {names} is missing; add it to the config "
            f"(`{plugin.name} --about` describes it)")


def validate_config(plugin: Any, config: dict[str, Any], *, raise_errors: bool) -> list[str]:
    """Check ``config``; raise one :class:`ConfigError` listing every problem. Then
    top-level settings given as null take the schema's default (:func:`null_to_defaults`).

    Raises:
        ConfigError: ``raise_errors`` and the config fails the plugin's schema.
    """
    problems = config_problems(plugin, config)
    null_to_defaults(config, plugin.config_jsonschema)
    if problems and raise_errors:
        raise ConfigError("Config validation failed: " + "; ".join(problems))
    if problems:
        plugin.logger.warning("Config validation found problems (not needed for this "
                              "command): %s", "; ".join(problems))
    return problems
