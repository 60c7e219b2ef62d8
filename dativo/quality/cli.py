"""``dativo quality``: run a table's contract rules on demand, and read its quality history.

``check`` finds each table's contract the way the target does (``stream_contracts``,
then ``<contracts_dir>/<tenant>/<domain>/<stream>.odcs.yaml``), measures its rules with
the target's own :class:`~dativo.quality.gate.QualityGate` on the table's current
snapshot (every rule reads the whole table here, whatever its scope) and records the
results in ``<table>__quality`` with a ``check-<uuid>`` run id, as a load's are.
``history`` prints that table's recorded loads, one line each.

The Iceberg reads and writes are in :mod:`dativo.iceberg.quality_reads`, imported when a
command runs, so ``dativo --help`` needs no pyiceberg.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dativo.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from dativo.contracts import Contract
    from dativo.iceberg.quality_reads import QualityTables, SnapshotRows

QUALITY_SQL_TIMEOUT_SECONDS = 30.0
"""The target's ``quality_sql_timeout_seconds`` default (its config schema's)."""
CHECK_RUN_PREFIX = "check-"
"""Run ids of ``dativo quality check`` in ``<table>__quality`` (a load's is the target's)."""
CONFIG_HELP = "target-dativo-iceberg config JSON (tenant_id, catalog, contracts_dir, " \
              "stream_contracts, quality_sql_timeout_seconds)."


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """What ``check`` reads of the target's config: where the tables and contracts are."""

    tenant_id: str
    catalog: Mapping[str, Any] | None
    contracts_dir: Path | None
    stream_contracts: Mapping[str, str]
    timeout: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CheckConfig:
        """Raises: ConfigError naming the bad key, as the target would."""
        from dativo.names import check_tenant

        values = {k: v for k, v in config.items() if v is not None}
        contracts_dir = values.get("contracts_dir")
        if contracts_dir is not None and not Path(contracts_dir).is_dir():
            raise ConfigError(f"contracts_dir: {contracts_dir} is not a directory")
        stream_contracts = values.get("stream_contracts") or {}
        if not isinstance(stream_contracts, Mapping):
            raise ConfigError("stream_contracts: must map stream names to contract files")
        try:
            timeout = float(values.get("quality_sql_timeout_seconds",
                                       QUALITY_SQL_TIMEOUT_SECONDS))
        except (TypeError, ValueError):
            timeout = float("nan")
        if not 0 < timeout < float("inf"):
            raise ConfigError(f"quality_sql_timeout_seconds: "
                              f"{values['quality_sql_timeout_seconds']!r} must be a number "
                              "of seconds > 0")
        return cls(check_tenant("tenant_id", values.get("tenant_id")), values.get("catalog"),
                   Path(contracts_dir) if contracts_dir else None,
                   {str(k): str(v) for k, v in stream_contracts.items()}, timeout)

    def contracts(self) -> Iterator[Contract | ConfigError]:
        """Every contract a stream of this config can resolve to, as the target resolves
        it (:func:`dativo.contracts.resolve_contract_path`): the mapped streams, then
        each ``<contracts_dir>/<tenant>/<domain>/<name>.odcs.yaml``; a contract that
        cannot be read or fails the lint is its :class:`ConfigError` instead, so the
        caller decides whether it concerns the tables asked for."""
        from dativo.contracts import load_contract, resolve_contract_path
        from dativo.contracts.resolve import CONTRACT_SUFFIX

        streams = list(self.stream_contracts)
        root = self.contracts_dir / self.tenant_id if self.contracts_dir else None
        if root is not None and root.is_dir():
            streams += sorted(p.name[: -len(CONTRACT_SUFFIX)]
                              for p in root.glob(f"*/*{CONTRACT_SUFFIX}"))
        seen: set[tuple[Path, str]] = set()
        for stream in streams:
            try:
                path = resolve_contract_path(stream, tenant_id=self.tenant_id,
                                             contracts_dir=self.contracts_dir,
                                             stream_contracts=self.stream_contracts)
                if path is None or (path.resolve(), stream.split("-")[-1]) in seen:
                    continue
                seen.add((path.resolve(), stream.split("-")[-1]))
                yield load_contract(path, object_name=stream.split("-")[-1])
            except ConfigError as exc:
                yield exc

    def tables(self) -> tuple[dict[str, Contract], list[ConfigError]]:
        """Each contract's table (dotted name) -> its contract, and the contracts that
        cannot be used (unreadable, invalid, another tenant's).

        Raises:
            ConfigError: Two different contracts describe one table.
        """
        from dativo.iceberg.naming import table_identifier

        found: dict[str, Contract] = {}
        problems: list[ConfigError] = []
        for contract in self.contracts():
            if isinstance(contract, ConfigError):
                problems.append(contract)
                continue
            try:
                name = ".".join(table_identifier(self.tenant_id, contract))
            except ConfigError as exc:
                problems.append(exc)
                continue
            if name in found and found[name].source != contract.source:
                raise ConfigError(f"table {name} is described by two contracts "
                                  f"({found[name].source}, {contract.source}); map each "
                                  "stream to one with stream_contracts")
            found.setdefault(name, contract)
        return found, problems

    def where(self) -> str:
        if self.contracts_dir is None:
            return "contracts_dir is not set in the config"
        return f"looked under {self.contracts_dir / self.tenant_id}/*/ and stream_contracts"


@click.group()
def quality() -> None:
    """Data quality: on-demand checks and history.

    Run a contract's quality rules on a landed table, and read the results recorded
    for its loads.

    Results go to <table>__quality beside each table, the table a load's quality gate
    writes too (docs/data-quality.md).
    """


@quality.command("check")
@click.argument("tables", nargs=-1)
@click.option("--all", "every_table", is_flag=True,
              help="Every table of the config's contracts that has quality rules and "
                   "has been loaded.")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help=CONFIG_HELP)
@click.pass_context
def quality_check(ctx: click.Context, tables: tuple[str, ...], every_table: bool,
                  config_path: Path) -> None:
    """Run tables' contract quality rules now.

    The rules run on each table's current snapshot.

    TABLES are dotted identifiers such as acme.crm.customers. Each table's contract is
    found as the target finds it (stream_contracts, else contracts_dir/<tenant>/); every
    rule reads the whole table, whatever its scope. One line per rule (measured value,
    threshold, outcome); the results are recorded in <table>__quality with the snapshot
    id and a run id check-<uuid>. Exit 0 when no severity: error rule failed, else 2.
    """
    from dativo.cli import _run, read_target_config

    def action() -> int:
        config = CheckConfig.from_config(read_target_config(config_path))
        from dativo.iceberg.quality_reads import QualityTables

        store = QualityTables(config.catalog)
        chosen = [(name, contract, store.snapshot(name)) for name, contract
                  in _checked_tables(config, store, tables, every_table)]
        failed = sum(_check(config, store, *table) for table in chosen)
        return 2 if failed else 0

    _run(ctx, action)


def _checked_tables(config: CheckConfig, store: QualityTables, tables: Sequence[str],
                    every_table: bool) -> list[tuple[str, Contract]]:
    """The tables to check with their contracts, all resolved before any is measured.

    Raises:
        ConfigError: Neither or both of TABLES and --all; a table is unknown, has no
            contract, or its contract has no quality rules.
    """
    if tables and every_table:
        raise ConfigError("name tables to check or pass --all, not both")
    if not tables and not every_table:
        raise ConfigError("name tables to check (e.g. acme.crm.customers) or pass --all")
    contracts, problems = config.tables()
    if every_table and problems:  # every contract's table is asked for
        raise problems[0]
    if every_table:
        chosen = [(n, c) for n, c in sorted(contracts.items())
                  if c.quality and store.loaded(n)]
        if not chosen:
            raise ConfigError(f"no loaded table has a contract with quality rules "
                              f"({config.where()}); add a quality list to a contract "
                              "(docs/data-quality.md) and load the table")
        return chosen
    for name in tables:
        store.load(name)  # an unknown table is named before any contract is looked for
        contract = contracts.get(name)
        if contract is None and problems:  # maybe the contract that cannot be read
            raise ConfigError(f"table {name}: no readable contract describes it, and "
                              f"{len(problems)} contract(s) cannot be read; the first: "
                              f"{problems[0]}")
        if contract is None:
            raise ConfigError(f"table {name}: no contract of tenant {config.tenant_id} "
                              f"describes it ({config.where()}); add its ODCS contract "
                              "or map its stream in stream_contracts")
        if not contract.quality:
            raise ConfigError(f"table {name}: contract {contract.source} has no quality "
                              "rules; add a quality list to its schema object or a property "
                              "(docs/data-quality.md) and run `dativo contract lint` on it")
    return [(name, contracts[name]) for name in dict.fromkeys(tables)]


def _check(config: CheckConfig, store: QualityTables, name: str, contract: Contract,
           rows: SnapshotRows) -> bool:
    """Measure, print and record one table's rules; whether a severity: error rule failed."""
    from dativo.quality.gate import QualityGate

    gate = QualityGate(contract.name, contract.quality, strict=False, timeout=config.timeout,
                       columns=rows.columns)
    results = gate.gather(rows)
    click.echo(f"{name} @ snapshot {rows.snapshot_id}: {len(results)} rule(s)")
    shown = [(r, "no value" if r.measured is None else _number(r.measured)
              + ("%" if rule.unit == "percent" else ""))
             for r, rule in zip(results, contract.quality, strict=False)]
    width = [max(len(text) for text in column) for column in
             ([r.rule for r, _ in shown], [m for _, m in shown],
              [r.threshold or "" for r, _ in shown])]
    for result, measured in shown:
        click.echo(f"  {result.outcome.upper():<4}  {result.rule:<{width[0]}}  measured "
                   f"{measured:<{width[1]}}  {result.threshold or '':<{width[2]}}  "
                   f"(severity {result.severity or 'none'})")
        if result.outcome == "fail" and result.measured is None:
            click.echo(f"        {result.message}")
    run_id = f"{CHECK_RUN_PREFIX}{uuid.uuid4()}"
    recorded = store.record(contract, config.tenant_id, results, run_id=run_id,
                            snapshot_id=rows.snapshot_id)
    errors = [r for r, rule in zip(results, contract.quality, strict=False)
              if r.outcome == "fail" and rule.blocking]
    failed = sum(r.outcome == "fail" for r in results)
    verdict = (f"{failed} failed ({len(errors)} with severity error)" if failed
               else "all passed")
    click.echo(f"{name}: {verdict}; recorded in {recorded} as run {run_id}")
    return bool(errors)


@quality.command("history")
@click.argument("table")
@click.option("--last", default=30, show_default=True, type=click.IntRange(min=1),
              help="How many of the newest loads (and checks) to show.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="target-dativo-iceberg config JSON whose 'catalog' block to use "
                   "[default: the embedded catalog in ./output/warehouse].")
@click.pass_context
def quality_history(ctx: click.Context, table: str, last: int,
                    config_path: Path | None) -> None:
    """Quality results of TABLE's recent loads.

    The recorded results, oldest first, newest last.

    TABLE is a dotted identifier such as acme.crm.customers. One line per gated load or
    `dativo quality check` run: time, run id, snapshot id ('blocked' when strict mode
    stopped the commit), passed/failed/flagged counts and the failing rules. A line is
    marked BLOCKED (the commit was stopped), FAIL (a rule failed, any severity), FLAG
    (an anomaly or schema-drift flag) or ok. A table with no recorded results is said
    so, with exit 0.
    """
    from dativo.cli import _catalog_props, _run

    def action() -> int:
        from dativo.iceberg.quality_reads import QualityTables

        rows = QualityTables(_catalog_props(config_path)).history(table)
        loads = _loads(rows) if rows is not None else []
        if not loads:
            click.echo(f"{table}: no quality results recorded yet; the target records "
                       f"them in {table}__quality at each load, and `dativo quality check "
                       f"{table} --config <target config>` on demand")
            return 0
        shown = loads[-last:]
        click.echo(f"{table}: the last {len(shown)} of {len(loads)} recorded load(s), "
                   "oldest first")
        for line in _history_lines(shown):
            click.echo(line)
        return 0

    _run(ctx, action)


@dataclass(frozen=True, slots=True)
class Load:
    """One gated commit (or check) as recorded: its rows of ``<table>__quality``."""

    checked_at: datetime
    run_id: str
    snapshot_id: int | None
    passed: int  # rules that passed (an anomaly metric within its band is not counted)
    failed: tuple[str, ...]  # "<rule> (<severity>)"
    flagged: tuple[str, ...]  # "anomaly <rule>" / "<kind> <rule>"


def _loads(rows: pa.Table) -> list[Load]:
    """The recorded rows (oldest first) grouped by load: a run commits many times, and
    each commit's results are written together, with one time. Counted in Arrow; only
    the failed and flagged rows (a few per load) become Python objects, not the profile
    rows that make up most of the table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = ["run_id", "checked_at"]
    passed = pc.and_(pc.equal(rows["outcome"], "pass"), pc.equal(rows["kind"], "rule"))
    counts = pa.table({**{k: rows[k] for k in keys}, "snapshot_id": rows["snapshot_id"],
                       "passed": pc.cast(passed, pa.int64())})
    grouped = counts.group_by(keys, use_threads=False).aggregate(
        [("snapshot_id", "max"), ("passed", "sum")]).sort_by([("checked_at", "ascending")])
    notable: dict[tuple[str, datetime], list[dict[str, Any]]] = {}
    for row in rows.filter(pc.is_in(rows["outcome"], pa.array(["fail", "flag"]))).select(
            [*keys, "rule", "kind", "severity", "outcome"]).to_pylist():
        notable.setdefault((row["run_id"], row["checked_at"]), []).append(row)
    loads = []
    for load in grouped.to_pylist():
        found = notable.get((load["run_id"], load["checked_at"]), [])
        loads.append(Load(
            load["checked_at"], load["run_id"], load["snapshot_id_max"], load["passed_sum"],
            tuple(f"{r['rule']} ({r['severity'] or 'no severity'})" for r in found
                  if r["outcome"] == "fail"),
            tuple(f"{r['kind']} {r['rule']}" for r in found if r["outcome"] == "flag")))
    return loads


def _history_lines(loads: Sequence[Load]) -> list[str]:
    """A header and one aligned line per load, led by its mark: BLOCKED (strict mode
    stopped the commit), FAIL (a rule failed), FLAG (an anomaly or drift flag), ok."""
    cells = [("", "time (UTC)", "run id", "snapshot", "pass", "fail", "flag", "failing")]
    for load in loads:
        mark = ("BLOCKED" if load.snapshot_id is None else "FAIL" if load.failed
                else "FLAG" if load.flagged else "ok")
        notes = []
        if load.failed:
            notes.append(f"failed: {', '.join(load.failed)}")
        if load.flagged:
            notes.append(f"flagged: {', '.join(load.flagged)}")
        cells.append((mark, load.checked_at.strftime("%Y-%m-%d %H:%M:%S"), load.run_id,
                      "blocked" if load.snapshot_id is None else str(load.snapshot_id),
                      str(load.passed), str(len(load.failed)), str(len(load.flagged)),
                      "; ".join(notes) or "-"))
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
            .rstrip() for row in cells]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"

