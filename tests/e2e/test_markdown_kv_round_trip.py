"""Round trip at scale: CSV -> Markdown-KV files -> Iceberg, value for value.

A 10,000-row CSV full of values that are hard to write as ``key: value`` text (colons,
``::``, line breaks, leading spaces, backticks and fences, unicode, number-like and
literal-like text, empty and null cells, full-precision floats, decimals, dates and
timestamps) goes through ``tap-dativo-csv | target-dativo-iceberg`` with the settings
of the Meltano loader ``target-dativo-markdown-kv`` (``format: markdown_kv``,
``storage: raw_file``, upsert), then ``tap-dativo-markdown-kv | target-dativo-iceberg``
into a Parquet table. That table must hold every CSV row, every column, as the value
the contract types the cell to. Any value the codec, the writer or the tap changed,
lost or mixed up between rows would show up here, however rare its shape.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import random
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, REPO, read_table

ROWS = 10_000
TENANT, DOMAIN, STREAM = "acme", "shop", "items"
TABLE = (TENANT, DOMAIN, STREAM)
MANIFEST = (TENANT, DOMAIN, f"{STREAM}__md_files")

CONTRACT = {
    "apiVersion": "v3.0.2", "kind": "DataContract", "id": "acme-shop-items",
    "name": "Items", "version": "1.0.0", "status": "active",
    "tenant": TENANT, "domain": DOMAIN,
    "schema": [{"name": STREAM, "physicalType": "table", "properties": [
        {"name": "id", "logicalType": "integer", "physicalType": "bigint",
         "primaryKey": True, "primaryKeyPosition": 1, "required": True},
        {"name": "qty", "logicalType": "integer", "physicalType": "bigint"},
        {"name": "price", "logicalType": "number", "physicalType": "decimal(18,4)"},
        {"name": "ratio", "logicalType": "number", "physicalType": "double"},
        {"name": "code", "logicalType": "string"},
        {"name": "note", "logicalType": "string"},
        {"name": "label", "logicalType": "string"},
        {"name": "active", "logicalType": "boolean"},
        {"name": "day", "logicalType": "date"},
        {"name": "seen_at", "logicalType": "date", "physicalType": "timestamptz"},
    ]}],
}
COLUMNS = [p["name"] for p in CONTRACT["schema"][0]["properties"]]

# Text that looks like something else: numbers, literals, JSON, headings, fences.
CODES = ["12.50", "0042", "-7", "1e5", "-0", "0.10", "true", "false", "null", "NaN",
         "+1", "1_000", "[1,2]", '{"a":1}', '"quoted"', "## Record 7", "# title", "---",
         "```", "x", " 12.50", "12.50 "]
# Strings the codec must quote, continue or fence.
NOTES = ["a: b", "key:: value", "http://x.test/a?b=c:d", "ends with colon:", ":",
         "::", "line one\nline two", "line one\n  indented two", "para\n\npara",
         "\nleading newline", "trailing newline\n", "  leading spaces", "trailing  ",
         "   ", "\t tab", "cr\r\nlf", "``` fenced ```", "````\ncode\n````", "`tick`",
         "```sql\nselect 1 -- a: b :: c\n```", "## Record 1\n```\nid: 2\n```",
         "# heading\nx:: y", "back\\slash", 'say "hi"', "\u2028sep", "x\u0085y",
         "a,b;c|d", "null\nnull", "- item\n- item"]
WORDS = ["Zoë", "naïve", "東京", "Ελλάδα", "😀", "mañana", "שלום", "e\u0301", "ß", "ﬁ",
         "plain", "text", "with", "colons:", "and", "spaces"]


def cell_text(rng: random.Random, pool: list[str]) -> str:
    """A cell from ``pool``, from random words, or empty (a null) one time in ten."""
    roll = rng.random()
    if roll < 0.1:
        return ""
    if roll < 0.55:
        return rng.choice(pool)
    words = rng.choices(WORDS + NOTES, k=rng.randint(1, 6))
    return rng.choice([" ", "\n", ": ", "", "::"]).join(words)


def maybe(rng: random.Random, text: str) -> str:
    return "" if rng.random() < 0.08 else text


def csv_row(rng: random.Random, row_id: int) -> list[str]:
    """One row of cell text, as a user's export would hold it."""
    start = dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc)
    seen = start + dt.timedelta(microseconds=rng.randrange(0, 200 * 365 * 86400 * 10**6))
    day = dt.date(1, 1, 1) + dt.timedelta(days=rng.randrange(0, 3_652_058))
    qty = rng.choice([0, -1, 2**62, -(2**62), rng.randint(-10**6, 10**6)])
    price = Decimal(rng.randint(-10**12, 10**12)).scaleb(-rng.choice([0, 2, 4]))
    ratio = rng.choice([rng.random() * 10 ** rng.randint(-5, 12), -rng.random(), 0.1 + 0.2,
                        1e-300, 7.0, 123456789.12345679])
    return [str(row_id), maybe(rng, str(qty)), maybe(rng, str(price)),
            maybe(rng, repr(ratio)), cell_text(rng, CODES), cell_text(rng, NOTES),
            cell_text(rng, WORDS), maybe(rng, rng.choice(["true", "false"])),
            maybe(rng, day.isoformat()), maybe(rng, seen.isoformat().replace("+00:00", "Z"))]


def write_csv(path: Path) -> None:
    """10,000 rows, ids shuffled so file order and id order differ."""
    rng = random.Random(20240301)
    ids = rng.sample(range(1, 10 * ROWS), ROWS)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(csv_row(rng, row_id) for row_id in ids)


def _timestamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# How a CSV cell reads back from Iceberg, by the contract's (logicalType, physicalType).
FROM_CSV: dict[tuple[str, str | None], Callable[[str], Any]] = {
    ("integer", "bigint"): int,
    ("number", "decimal(18,4)"): Decimal,
    ("number", "double"): float,
    ("string", None): str,
    ("boolean", None): {"true": True, "false": False}.__getitem__,
    ("date", None): dt.date.fromisoformat,
    ("date", "timestamptz"): _timestamp,
}


def typed_csv(path: Path) -> list[dict[str, Any]]:
    """The CSV's rows typed by the contract; an empty cell is null (as the tap reads it)."""
    kinds = {p["name"]: FROM_CSV[(p["logicalType"], p.get("physicalType"))]
             for p in CONTRACT["schema"][0]["properties"]}
    with path.open(newline="", encoding="utf-8") as handle:
        return [{name: kinds[name](cell) if cell != "" else None for name, cell in row.items()}
                for row in csv.DictReader(handle)]


PIPE = (
    '"$TAP" --config "$1" 2>"$3" | "$TARGET" --config "$2" 2>"$4"\n'
    'status=("${PIPESTATUS[@]}")\n'
    'echo "${status[@]}" >"$5"\n'
    'exit $(( status[0] ? status[0] : status[1] ))\n'
)


def pipe(root: Path, tap: str, tap_config: dict[str, Any], target_config: dict[str, Any],
         name: str) -> tuple[list[int], str]:
    """Run ``tap | target-dativo-iceberg`` in bash; return both exit codes and stderrs."""
    logs = root / name
    logs.mkdir()
    configs = [logs / "tap.json", logs / "target.json"]
    for path, config in zip(configs, (tap_config, target_config), strict=True):
        path.write_text(json.dumps(config))
    env = {**os.environ, "TAP": str(BIN / tap), "TARGET": str(BIN / "target-dativo-iceberg"),
           "PYTHONWARNINGS": "ignore"}
    args = [*configs, logs / "tap.err", logs / "target.err", logs / "status"]
    subprocess.run(["bash", "-c", PIPE, "pipe", *map(str, args)], capture_output=True,
                   timeout=900, cwd=root, env=env)
    codes = [int(c) for c in (logs / "status").read_text().split()]
    return codes, (logs / "tap.err").read_text() + (logs / "target.err").read_text()


def loader_settings() -> dict[str, Any]:
    """The Meltano loader ``target-dativo-markdown-kv``'s own config, so this test runs
    what ``meltano run ... target-dativo-markdown-kv`` runs."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    loader = next(p for p in project["plugins"]["loaders"]
                  if p["name"] == "target-dativo-markdown-kv")
    return dict(loader["config"])


def test_ten_thousand_csv_rows_survive_markdown_kv_files_value_for_value(
    tmp_path: Path, catalog_props: dict[str, str], open_catalog: Callable[[], Catalog]
) -> None:
    contracts = tmp_path / "contracts"
    (contracts / TENANT / DOMAIN).mkdir(parents=True)
    (contracts / TENANT / DOMAIN / f"{STREAM}.odcs.yaml").write_text(yaml.safe_dump(CONTRACT))
    source = tmp_path / "items.csv"
    write_csv(source)
    expected = typed_csv(source)
    assert len(expected) == ROWS
    # The generator must really produce the hard cases, or the comparison proves little.
    notes = [r["note"] for r in expected]
    assert all(n in notes for n in ("line one\n  indented two", "   ", "cr\r\nlf",
                                    "````\ncode\n````", "::"))
    assert sum(n is None for n in notes) > 500
    assert {r["code"] for r in expected} >= {"12.50", "true", "null", " 12.50"}

    common = {"tenant_id": TENANT, "contracts_dir": str(contracts),
              "validation_mode": "strict", "catalog": catalog_props}
    markdown = {**common, **loader_settings()}
    assert (markdown["format"], markdown["markdown_kv"]["storage"]) == ("markdown_kv",
                                                                        "raw_file")
    codes, logs = pipe(tmp_path, "tap-dativo-csv", {
        "tenant_id": TENANT, "contracts_dir": str(contracts),
        "files": [{"entity": STREAM, "path": str(source)}]}, markdown, "to-markdown")
    assert codes == [0, 0], logs[-3000:]

    catalog = open_catalog()
    manifest = read_table(catalog, MANIFEST)
    assert manifest.num_rows == ROWS
    folder = Path(catalog_props["warehouse"].removeprefix("file://")) / "markdown_kv" / \
        TENANT / STREAM
    files = sorted(folder.glob("*.md"))
    assert sorted(str(f.stem) for f in files) == sorted(str(r["id"]) for r in expected)
    assert not catalog.table_exists(TABLE)  # the first leg writes only documents

    codes, logs = pipe(tmp_path, "tap-dativo-markdown-kv", {
        "files": [{"entity": STREAM, "path": str(folder / "*.md"), "keys": ["id"]}]},
        {**common, "load_method": "upsert"}, "from-markdown")
    assert codes == [0, 0], logs[-3000:]
    assert "Traceback" not in logs

    table = read_table(open_catalog(), TABLE)
    assert [str(table.schema.field(n).type) for n in COLUMNS] == [
        "int64", "int64", "decimal128(18, 4)", "double", "string", "string", "string",
        "bool", "date32[day]", "timestamp[us, tz=UTC]"]
    landed = sorted(({n: r[n] for n in COLUMNS} for r in table.to_pylist()),
                    key=lambda r: r["id"])
    expected.sort(key=lambda r: r["id"])
    assert len(landed) == ROWS
    for got, want in zip(landed, expected, strict=True):
        assert got == want, (got["id"], {k: (got[k], want[k]) for k in COLUMNS
                                         if got[k] != want[k]})
