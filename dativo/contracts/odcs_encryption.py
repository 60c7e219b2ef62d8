"""What a contract says about column encryption, and lint problems in it (issue 19).

ODCS has the vocabulary on a property: ``classification`` (e.g. ``restricted``) and
``encryptedName`` (the stored column's name). Which classifications are encrypted is the
target's setting (``encryption_classifications``); the mode is dativo's custom property
``customProperties: [{property: encryption, value: deterministic|randomized}]``. A
marking that would be silently ignored (an unknown mode, a nested or object column, a
stored name that collides with another column) is a lint problem, so a contract never
promises protection the target does not give.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dativo.contracts.odcs_rules import _did_you_mean
from dativo.names import name_problem
from dativo.schema_messages import clip

ENCRYPTION = "encryption"
"""customProperties key of a column's encryption mode."""
ENCRYPTION_MODES = ("deterministic", "randomized")
"""``deterministic`` (the default): equal values give equal tokens, so joins, upsert keys
and ``dativo forget`` still match; ``randomized``: equal values give different tokens."""
_UNENCRYPTABLE = ("object", "array")


def encryption_mode(prop: dict[str, Any]) -> str | None:
    """The property's ``encryption`` custom property as written (``None``: not set)."""
    for custom in prop.get("customProperties") or []:
        if isinstance(custom, dict) and custom.get("property") == ENCRYPTION:
            value = custom.get("value")
            return value.strip().lower() if isinstance(value, str) else str(value)
    return None


def marks_encryption(prop: dict[str, Any]) -> bool:
    """Whether the property asks for encryption whatever the target's classifications:
    it has an ``encryptedName`` or an ``encryption`` mode."""
    return prop.get("encryptedName") is not None or encryption_mode(prop) is not None


def encryption_problems(prop: dict[str, Any], where: str, kind: str | None, *,
                        nested: bool) -> list[str]:
    """Problems of one property's encryption markings (``where`` names it)."""
    problems = []
    mode = encryption_mode(prop)
    if mode is not None and mode not in ENCRYPTION_MODES:
        problems.append(f"{where}: customProperties encryption {clip(repr(mode))} is not one "
                        f"of {', '.join(ENCRYPTION_MODES)}{_did_you_mean(mode, ENCRYPTION_MODES)}")
    if mode is not None and prop.get("encryptedName") is None and not prop.get("classification"):
        problems.append(f"{where}: customProperties encryption has no effect without "
                        "encryptedName or a classification (e.g. classification: restricted); "
                        "add one or remove it")
    name = prop.get("encryptedName")
    if name is not None and (problem := name_problem(name)) is not None:
        problems.append(f"{where}: encryptedName: {problem}")
    if not marks_encryption(prop):
        return problems
    if nested:
        problems.append(f"{where}: only top-level columns can be encrypted; move encryptedName "
                        "and the encryption custom property to the top-level column")
    elif kind in _UNENCRYPTABLE:
        problems.append(f"{where}: an {kind} column cannot be encrypted (its members keep "
                        "their own types); declare it without properties (stored as JSON "
                        "text) to encrypt it whole, or remove encryptedName/encryption")
    return problems


def stored_name_problems(props: Iterable[Any], where: str) -> list[str]:
    """``encryptedName`` values that collide with another column's name or stored name."""
    columns = list(props)
    names = {str(p["name"]) for p in columns if isinstance(p, dict) and "name" in p}
    problems, seen = [], set()
    for j, prop in enumerate(columns):
        stored = prop.get("encryptedName") if isinstance(prop, dict) else None
        if stored is None or "name" not in prop:
            continue
        stored = str(stored)
        if stored != str(prop["name"]) and stored in names:
            problems.append(f"{where}.properties[{j}] ({prop['name']}): encryptedName "
                            f"{clip(repr(stored))} is the name of another column; pick a "
                            "name no column has")
        elif stored in seen:
            problems.append(f"{where}.properties[{j}] ({prop['name']}): encryptedName "
                            f"{clip(repr(stored))} is given to two columns; pick distinct names")
        seen.add(stored)
    return problems
