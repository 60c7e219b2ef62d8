"""singer-sdk's standard tap test suite (``get_tap_test_class``) on a real PostgreSQL.

The suite builds its test methods from the tap's streams when this module is
imported, before any fixture runs, so this module starts its own throwaway cluster at
import (stopped at interpreter exit) instead of using the session ``postgres`` fixture.

The tables hold no json/jsonb column: the suite's attribute tests assume one JSON
type per column (a column that may hold a boolean must hold only booleans), which a
json column cannot promise. json/jsonb values are covered by test_tap_postgres_types.
"""

from __future__ import annotations

import atexit
import contextlib
from typing import Any

from singer_sdk.testing import get_tap_test_class

from tap_dativo_postgres.tap import TapDativoPostgres
from tests.services.postgres import running_postgres

DATABASE = "sdk_suite"
SQL = """
CREATE TYPE tier AS ENUM ('free', 'pro');
CREATE TABLE customers (
  id int PRIMARY KEY, email text NOT NULL, tier tier, balance numeric(12,2),
  signed_up date, last_seen timestamptz, tags text[]);
INSERT INTO customers VALUES
  (1, 'a@example.com', 'free', 10.00, '2024-01-01', '2024-02-01 10:00:00+00',
   '{x,y}'),
  (2, 'b@example.com', 'pro', 0.50, '2024-01-02', '2024-02-02 11:00:00+00', '{}'),
  (3, 'c@example.com', NULL, NULL, NULL, NULL, NULL);
CREATE TABLE order_lines (order_id int, line int, sku text, qty smallint,
  PRIMARY KEY (order_id, line));
INSERT INTO order_lines VALUES (1, 1, 'A', 2), (1, 2, 'B', 1), (2, 1, 'A', 5);
CREATE TABLE odd_types (id uuid PRIMARY KEY, photo bytea, trial interval, opens time,
  score numeric, ratio real, flags boolean[]);
INSERT INTO odd_types VALUES
  ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', decode('00ff', 'hex'), '1 mon 2 days', '08:30',
   1e40, 0.5,
   '{t,f}'),
  ('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', NULL, NULL, NULL, NULL, NULL, NULL);
"""

_services = contextlib.ExitStack()
atexit.register(_services.close)
_server = _services.enter_context(running_postgres())
_server.create_database(DATABASE)
_server.psql(SQL, DATABASE)

CONFIG: dict[str, Any] = {"host": _server.host, "port": _server.port, "user": _server.user,
                          "database": DATABASE}


def _selected_catalog() -> dict[str, Any]:
    """Discovered SQL streams are deselected by default; the suite syncs them all."""
    catalog = TapDativoPostgres(config=CONFIG, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            item["metadata"]["selected"] = True
    return catalog


TestTapDativoPostgres = get_tap_test_class(
    TapDativoPostgres, config=CONFIG, catalog=_selected_catalog(), parse_env_config=False)
