"""Find the contract file for a stream: explicit map first, then the tenant subtree."""

from __future__ import annotations

import glob
from collections.abc import Mapping
from pathlib import Path

from dativo.errors import ConfigError
from dativo.names import check_tenant

CONTRACT_SUFFIX = ".odcs.yaml"


def resolve_contract_path(
    stream: str,
    *,
    tenant_id: str,
    contracts_dir: Path | None,
    stream_contracts: Mapping[str, str],
) -> Path | None:
    """Return the contract file for ``stream``, or None when there is none.

    Lookup order: ``stream_contracts[stream]`` (relative paths resolve against
    ``contracts_dir``), then ``<contracts_dir>/<tenant>/<domain>/<stream>.odcs.yaml``
    for any domain folder. Streams named ``schema-table`` (as SQL taps emit) also
    match ``<table>.odcs.yaml``. A stream name is a file name here, never a path or a
    pattern: ``a/b``, ``..`` or ``*`` find no contract.

    Raises:
        ConfigError: A mapped file is missing, several domains hold the stream, or
            ``tenant_id`` is not a valid tenant id.
    """
    if stream in stream_contracts:
        path = Path(stream_contracts[stream])
        if not path.is_absolute() and contracts_dir is not None:
            path = contracts_dir / path
        if not path.is_file():
            raise ConfigError(
                f"stream_contracts.{stream}: contract file {path} does not exist"
            )
        return path
    if contracts_dir is None:
        return None
    tenant_root = contracts_dir / check_tenant("tenant_id", tenant_id)
    if not tenant_root.is_dir():
        return None
    names = {n for n in (stream, stream.split("-")[-1])
             if n not in ("", ".", "..") and "/" not in n and "\\" not in n}
    found = sorted(
        p for name in names
        for p in tenant_root.glob(f"*/{glob.escape(name)}{CONTRACT_SUFFIX}")
    )
    if len(found) > 1:
        listed = ", ".join(str(p) for p in found)
        raise ConfigError(
            f"stream '{stream}' matches several contracts ({listed}); "
            "pick one with stream_contracts"
        )
    return found[0] if found else None
