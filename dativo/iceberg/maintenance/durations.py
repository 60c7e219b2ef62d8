"""Durations on the command line (``--older-than``)."""

from __future__ import annotations

import math
from datetime import timedelta

from dativo.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str = "--older-than") -> timedelta:
    """``90s``, ``15m``, ``2h``, ``7d`` or plain seconds; never negative.

    Raises:
        ConfigError: ``text`` is not such a duration; the message names ``option``.
    """
    number, unit = (text[:-1], _UNITS[text[-1]]) if text[-1:] in _UNITS else (text, 1)
    try:
        seconds = float(number) * unit
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(text)
        return timedelta(seconds=seconds)
    except (ValueError, OverflowError) as exc:
        raise ConfigError(f"{option}: {text!r} is not a duration like 90s, 15m, 2h "
                          "or 7d") from exc
