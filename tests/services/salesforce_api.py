"""A Salesforce fixture server speaking the REST and Bulk API 2.0 protocols on a real socket.

What it implements (the wire formats of Salesforce's documentation):

* ``POST /services/oauth2/token``: the ``refresh_token`` grant (client id, secret and
  refresh token checked) and the JWT bearer grant (an RS256 assertion verified with the
  connected app's certificate key: ``iss`` the client id, ``sub`` the username, ``aud``
  this server's URL, ``exp`` not past), answering ``access_token`` and ``instance_url``;
  OAuth error JSON (``invalid_grant``, ``invalid_client_id``) with 400;
* ``GET /services/data/v<ver>/sobjects`` (describeGlobal) and
  ``.../sobjects/<name>/describe``;
* ``GET .../query?q=`` and ``.../queryAll?q=`` (``queryAll`` includes deleted records),
  pages of ``page_size`` records (or the ``Sforce-Query-Options: batchSize=`` header),
  ``nextRecordsUrl`` (``.../query/<cursor>-<offset>``) for the next;
* Bulk API 2.0: ``POST .../jobs/query`` (``query``/``queryAll``, CSV), ``GET
  .../jobs/query/<id>`` (``UploadComplete``, then ``InProgress`` for ``bulk_polls``
  polls, then ``JobComplete``, or ``Failed`` with ``errorMessage`` for a job queued with
  :meth:`SalesforceApi.fail_next_job`), ``GET .../jobs/query/<id>/results`` with
  ``maxRecords`` and ``locator``, answering CSV (every value quoted, null empty,
  dateTimes ``...000Z``) with ``Sforce-Locator`` (``null`` after the last page) and
  ``Sforce-NumberOfRecords``;
* ``Sforce-Limit-Info: api-usage=<used>/<limit>`` on every data answer (each data
  request counts one); past ``daily_limit`` every data request is 403
  ``REQUEST_LIMIT_EXCEEDED``; an unknown or expired token (:meth:`expire_sessions`) is
  401 ``INVALID_SESSION_ID``; errors are Salesforce's ``[{"message", "errorCode"}]``;
  5xx and other faults through :meth:`FixtureApi.inject`.

The SOQL it evaluates is a documented subset, enough for what a tap sends::

    SELECT <field>[, <field>...] | COUNT()
    FROM <object>
    [WHERE <field> <op> <literal> [AND <field> <op> <literal>...]]
    [ORDER BY <field> [ASC|DESC][, ...]]
    [LIMIT <n>]

``op`` is ``= != <> < <= > >=``; a literal is ``true``, ``false``, ``null``, a number,
a ``'quoted string'``, a date (``2024-01-31``) or a dateTime (``2024-01-31T10:00:00Z``,
fraction and ``+hh:mm`` allowed). Field names are case-insensitive as in Salesforce; an
unknown field is 400 ``INVALID_FIELD``, anything else unparsable 400
``MALFORMED_QUERY``. ``ORDER BY`` sorts nulls first; there is no OR, no parentheses, no
relationship fields, no functions but ``COUNT()``.

Records live in memory: :meth:`insert`, :meth:`update` and :meth:`delete` move the
server's clock (1.25 s per write, so stamps have milliseconds) and set
``CreatedDate``/``LastModifiedDate``/``SystemModstamp``/``IsDeleted`` as Salesforce does.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.services.http_fixture import FixtureApi, Request, Response, json_response

CLIENT_ID = "3MVG9fixture.consumer.key"
CLIENT_SECRET = "fixture-consumer-secret-5d1f0c2e"
REFRESH_TOKEN = "5Aep861fixture.refresh.token.9Qx7"
USERNAME = "integration@acme.example"
API_VERSION = "62.0"
UTC = timezone.utc
EPOCH = datetime(2024, 1, 15, 10, 0, 0, tzinfo=UTC)
STEP = timedelta(seconds=1, milliseconds=250)
OPS = ("<=", ">=", "!=", "<>", "=", "<", ">")
_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
)""", re.X)


def sf_field(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    """A describe field as Salesforce returns it (the keys a tap reads, and a few more)."""
    return {"name": name, "type": kind, "label": name, "length": extra.pop("length", 0),
            "precision": extra.pop("precision", 0), "scale": extra.pop("scale", 0),
            "digits": 0, "nillable": kind not in ("id", "boolean"),
            "calculated": extra.pop("calculated", False),
            "calculatedFormula": extra.pop("formula", None),
            "compoundFieldName": extra.pop("compound", None),
            "custom": name.endswith(("__c", "__s")), "filterable": True,
            "sortable": kind not in ("textarea", "multipicklist", "address", "location"),
            "updateable": kind not in ("id",) and not extra.get("readonly"),
            "referenceTo": extra.pop("reference_to", []), **extra}


def _system_fields() -> list[dict[str, Any]]:
    return [sf_field("IsDeleted", "boolean"), sf_field("CreatedDate", "datetime"),
            sf_field("LastModifiedDate", "datetime"), sf_field("SystemModstamp", "datetime")]


def account_fields() -> list[dict[str, Any]]:
    """Account with every mapped type: compound address and location, currency,
    percent, double, a formula, a multipicklist, date, int, reference."""
    billing = [("BillingStreet", "textarea"), ("BillingCity", "string"),
               ("BillingState", "string"), ("BillingPostalCode", "string"),
               ("BillingCountry", "string")]
    return [
        sf_field("Id", "id", length=18), sf_field("Name", "string", length=255),
        sf_field("Type", "picklist"), sf_field("ParentId", "reference",
                                                reference_to=["Account"]),
        *[sf_field(n, k, compound="BillingAddress") for n, k in billing],
        sf_field("BillingLatitude", "double", precision=18, scale=15,
                 compound="BillingAddress"),
        sf_field("BillingLongitude", "double", precision=18, scale=15,
                 compound="BillingAddress"),
        sf_field("BillingAddress", "address"),
        sf_field("AnnualRevenue", "currency", precision=18, scale=2),
        sf_field("NumberOfEmployees", "int", precision=8),
        sf_field("Discount__c", "percent", precision=5, scale=2),
        sf_field("Score__c", "double", precision=10, scale=4, calculated=True,
                 formula="AnnualRevenue / 1000000", readonly=True),
        sf_field("Regions__c", "multipicklist"), sf_field("Active__c", "boolean"),
        sf_field("Founded__c", "date"), sf_field("Website", "url"),
        sf_field("Phone", "phone"),
        sf_field("HQ__Latitude__s", "double", precision=9, scale=6, compound="HQ__c"),
        sf_field("HQ__Longitude__s", "double", precision=9, scale=6, compound="HQ__c"),
        sf_field("HQ__c", "location"),
        sf_field("Logo__c", "base64"),
        *_system_fields(),
    ]


def contact_fields() -> list[dict[str, Any]]:
    return [sf_field("Id", "id", length=18),
            sf_field("AccountId", "reference", reference_to=["Account"]),
            sf_field("FirstName", "string"), sf_field("LastName", "string"),
            sf_field("Email", "email"), sf_field("Birthdate", "date"),
            sf_field("DoNotCall", "boolean"), *_system_fields()]


@dataclass
class SObject:
    """One object type: its describe fields and records by Id (insertion order)."""

    name: str
    key_prefix: str
    fields: list[dict[str, Any]]
    queryable: bool = True
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def field_named(self, name: str) -> dict[str, Any] | None:
        lowered = name.lower()
        return next((f for f in self.fields if f["name"].lower() == lowered), None)


@dataclass
class Soql:
    """A parsed query of the subset above."""

    sobject: str
    fields: list[str]  # the describe's spelling; empty for COUNT()
    count: bool
    where: list[tuple[str, str, Any]]
    order: list[tuple[str, bool]]  # (field, descending)
    limit: int | None


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class BulkJob:
    id: str
    operation: str
    sobject: str
    fields: list[str]
    rows: list[dict[str, Any]]
    error: str | None
    polls_left: int
    polled: int = 0
    state: str = "UploadComplete"


@dataclass
class SalesforceApi(FixtureApi):
    """The org: objects, tokens, usage, cursors and Bulk jobs."""

    objects: dict[str, SObject] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    usage: int = 0
    daily_limit: int = 15_000
    page_size: int = 2000
    bulk_polls: int = 1
    clock: datetime = EPOCH
    cursors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cursor_fields: dict[str, tuple[SObject, list[str]]] = field(default_factory=dict)
    jobs: dict[str, BulkJob] = field(default_factory=dict)
    job_failures: list[str] = field(default_factory=list)
    public_key: Any = None
    sessions_expire_at: int | None = None  # usage count at which every token expires
    client_secret: str = CLIENT_SECRET
    refresh_token: str = REFRESH_TOKEN
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.add_object("Account", "001", account_fields())
        self.add_object("Contact", "003", contact_fields())
        self.add_object("AccountFeed", "0D5", [sf_field("Id", "id")], queryable=False)

    # ------------------------------------------------------------------ the org's data

    def add_object(self, name: str, prefix: str, fields: list[dict[str, Any]], *,
                   queryable: bool = True) -> SObject:
        self.objects[name] = SObject(name, prefix, fields, queryable)
        return self.objects[name]

    def _tick(self) -> datetime:
        self.clock += STEP
        return self.clock

    def insert(self, sobject: str, **values: Any) -> dict[str, Any]:
        """A new record, its system fields set; returns it (a copy)."""
        with self.lock:
            obj = self.objects[sobject]
            record_id = f"{obj.key_prefix}{next(self._ids):012d}AAA"
            now = self._tick()
            record = {f["name"]: None for f in obj.fields}
            record.update({"Id": record_id, "IsDeleted": False, "CreatedDate": now,
                           "LastModifiedDate": now, "SystemModstamp": now})
            record.update(self._known(obj, values))
            obj.records[record_id] = record
            return dict(record)

    def bulk_load(self, sobject: str, rows: list[dict[str, Any]]) -> None:
        """Many records at once (benchmarks): as :meth:`insert`, without copies."""
        with self.lock:
            obj = self.objects[sobject]
            names = [f["name"] for f in obj.fields]
            for values in rows:
                record_id = f"{obj.key_prefix}{next(self._ids):012d}AAA"
                now = self._tick()
                record = dict.fromkeys(names)
                record.update(values)
                record.update({"Id": record_id, "IsDeleted": False, "CreatedDate": now,
                               "LastModifiedDate": now, "SystemModstamp": now})
                obj.records[record_id] = record

    def update(self, sobject: str, record_id: str, **values: Any) -> dict[str, Any]:
        with self.lock:
            obj = self.objects[sobject]
            record = obj.records[record_id]
            now = self._tick()
            record.update(self._known(obj, values))
            record.update({"LastModifiedDate": now, "SystemModstamp": now})
            return dict(record)

    def delete(self, sobject: str, record_id: str) -> dict[str, Any]:
        """Move the record to the recycle bin: only queryAll still returns it."""
        with self.lock:
            record = self.objects[sobject].records[record_id]
            now = self._tick()
            record.update({"IsDeleted": True, "LastModifiedDate": now,
                           "SystemModstamp": now})
            return dict(record)

    @staticmethod
    def _known(obj: SObject, values: dict[str, Any]) -> dict[str, Any]:
        for name in values:
            if obj.field_named(name) is None:
                raise KeyError(f"{obj.name} has no field {name}")
        return values

    # ------------------------------------------------------------------ test controls

    def revoke(self) -> None:
        """The refresh token is revoked (the user or an admin did): invalid_grant."""
        with self.lock:
            self.refresh_token = f"revoked-{secrets.token_hex(4)}"

    def expire_sessions(self) -> None:
        """Every access token issued so far becomes invalid (INVALID_SESSION_ID)."""
        with self.lock:
            self.tokens.clear()

    def fail_next_job(self, message: str) -> None:
        """The next Bulk job created ends Failed with this errorMessage."""
        with self.lock:
            self.job_failures.append(message)

    def oauth_config(self) -> dict[str, Any]:
        """A tap config for the refresh token flow against this server."""
        return {"client_id": CLIENT_ID, "client_secret": self.client_secret,
                "refresh_token": self.refresh_token, "login_url": self.url}

    def jwt_config(self) -> dict[str, Any]:
        """A tap config for the JWT bearer flow: a new RSA key, its public half kept
        as the connected app's certificate."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = key.public_key()
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        return {"client_id": CLIENT_ID, "username": USERNAME, "private_key": pem,
                "login_url": self.url}

    # ------------------------------------------------------------------ HTTP

    def error_body(self, status: int) -> Any:  # type: ignore[override]
        code = "SERVER_UNAVAILABLE" if status >= 500 else "UNKNOWN_EXCEPTION"
        return [{"message": f"fixture fault {status}", "errorCode": code}]

    def route(self, request: Request) -> Response:
        if request.path == "/services/oauth2/token" and request.method == "POST":
            return self._token(request)
        if not request.path.startswith("/services/data/"):
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        auth = request.headers.get("authorization", "")
        with self.lock:
            if self.sessions_expire_at is not None and self.usage >= self.sessions_expire_at:
                self.sessions_expire_at = None
                self.tokens.clear()  # the session timed out, as after hours of a long run
            if auth.removeprefix("Bearer ") not in self.tokens:
                return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
            self.usage += 1
            usage = {"Sforce-Limit-Info": f"api-usage={self.usage}/{self.daily_limit}"}
            if self.usage > self.daily_limit:
                return _errors(403, "REQUEST_LIMIT_EXCEEDED",
                               "TotalRequests Limit exceeded.", **usage)
        status, headers, body = self._data(request)
        return status, {**headers, **usage}, body

    def _token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.raw.decode()))
        grant = form.get("grant_type")
        if grant == "refresh_token":
            if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID,
                                                                      self.client_secret):
                return json_response(400, {"error": "invalid_client",
                                           "error_description": "invalid client credentials"})
            if form.get("refresh_token") != self.refresh_token:
                return json_response(400, {"error": "invalid_grant",
                                           "error_description": "expired access/refresh "
                                                                "token"})
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            problem = self._jwt_problem(form.get("assertion", ""))
            if problem:
                return json_response(400, {"error": "invalid_grant",
                                           "error_description": problem})
        else:
            return json_response(400, {"error": "unsupported_grant_type",
                                       "error_description": "grant type not supported"})
        token = f"00Dfixture!{secrets.token_urlsafe(24)}"
        with self.lock:
            self.tokens.add(token)
        return json_response(200, {
            "access_token": token, "instance_url": self.url, "token_type": "Bearer",
            "id": f"{self.url}/id/00Dfixture/005fixture", "issued_at": str(int(time.time()
                                                                              * 1000)),
            "signature": base64.b64encode(secrets.token_bytes(32)).decode()})

    def _jwt_problem(self, assertion: str) -> str | None:
        try:
            header, claims, signature = assertion.split(".")
            pad = lambda part: base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))  # noqa: E731
            if json.loads(pad(header)).get("alg") != "RS256":
                return "invalid assertion: alg must be RS256"
            if self.public_key is None:
                return "no certificate uploaded to the connected app"
            self.public_key.verify(pad(signature), f"{header}.{claims}".encode(),
                                   padding.PKCS1v15(), hashes.SHA256())
            body = json.loads(pad(claims))
        except Exception:  # any malformed assertion gets the same answer
            return "invalid assertion"
        if body.get("iss") != CLIENT_ID:
            return "invalid client_id"
        if body.get("sub") != USERNAME:
            return "user hasn't approved this consumer"
        if body.get("aud") != self.url:
            return "audience is invalid"
        if float(body.get("exp", 0)) < time.time():
            return "expired assertion"
        return None

    def _data(self, request: Request) -> Response:
        parts = request.path.removeprefix("/services/data/").strip("/").split("/")
        if not parts or parts[0] != f"v{API_VERSION}":
            return _errors(404, "NOT_FOUND", f"API version {parts[0]} is not served here")
        rest = parts[1:]
        try:
            match rest:
                case ["sobjects"]:
                    return self._describe_global()
                case ["sobjects", name, "describe"]:
                    return self._describe(name)
                case ["query" | "queryAll" as endpoint]:
                    return self._query(request, endpoint == "queryAll")
                case ["query" | "queryAll", cursor]:
                    return self._next_page(request, cursor)
                case ["jobs", "query"] if request.method == "POST":
                    return self._create_job(request)
                case ["jobs", "query", job_id]:
                    return self._job_info(job_id)
                case ["jobs", "query", job_id, "results"]:
                    return self._job_results(request, job_id)
        except SoqlError as exc:
            return _errors(400, exc.code, str(exc))
        return _errors(404, "NOT_FOUND", "The requested resource does not exist")

    def _describe_global(self) -> Response:
        return json_response(200, {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
            {"name": o.name, "label": o.name, "keyPrefix": o.key_prefix,
             "queryable": o.queryable, "replicateable": o.queryable, "retrieveable": True,
             "custom": o.name.endswith("__c"), "deletable": True,
             "urls": {"describe": f"/services/data/v{API_VERSION}/sobjects/{o.name}/describe"}}
            for o in self.objects.values()]})

    def _describe(self, name: str) -> Response:
        obj = self.objects.get(name)
        if obj is None:
            return _errors(404, "NOT_FOUND", f"The requested resource does not exist: {name}")
        return json_response(200, {"name": obj.name, "label": obj.name,
                                   "keyPrefix": obj.key_prefix, "queryable": obj.queryable,
                                   "fields": obj.fields})

    # ------------------------------------------------------------------ SOQL

    def parse(self, text: str) -> Soql:
        tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise SoqlError("MALFORMED_QUERY", f"unexpected token at: {text[position:][:20]!r}")
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind)))
            position = match.end()
            while position < len(text) and text[position].isspace():
                position += 1
        return _Parser(self, tokens).query()

    def evaluate(self, query: Soql, *, include_deleted: bool) -> list[dict[str, Any]]:
        obj = self.objects[query.sobject]
        with self.lock:
            rows = [dict(r) for r in obj.records.values()
                    if include_deleted or not r["IsDeleted"]]
        rows = [r for r in rows if all(_compare(r.get(f), op, v) for f, op, v in query.where)]
        for name, descending in reversed(query.order):
            rows.sort(key=lambda r, n=name: (r.get(n) is not None, r.get(n)
                                             if r.get(n) is not None else 0),
                      reverse=descending)
        return rows[:query.limit] if query.limit is not None else rows

    def _query(self, request: Request, include_deleted: bool) -> Response:
        query = self.parse(request.one("q") or "")
        rows = self.evaluate(query, include_deleted=include_deleted)
        if query.count:
            return json_response(200, {"totalSize": len(rows), "done": True, "records": []})
        batch = self._batch_size(request)
        cursor = f"01g{secrets.token_hex(6)}"
        obj = self.objects[query.sobject]
        with self.lock:
            self.cursors[cursor] = rows
            self.cursor_fields[cursor] = (obj, query.fields)
        return self._page(cursor, 0, batch)

    def _batch_size(self, request: Request) -> int:
        options = request.headers.get("sforce-query-options", "")
        found = re.search(r"batchSize=(\d+)", options)
        return max(200, min(2000, int(found[1]))) if found else self.page_size

    def _next_page(self, request: Request, cursor_offset: str) -> Response:
        cursor, _, offset = cursor_offset.rpartition("-")
        if cursor not in self.cursors:
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor, int(offset), self._batch_size(request))

    def _page(self, cursor: str, offset: int, batch: int) -> Response:
        rows = self.cursors[cursor]
        obj, names = self.cursor_fields[cursor]
        page = rows[offset:offset + batch]
        done = offset + batch >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": [
            {"attributes": {"type": obj.name, "url": f"/services/data/v{API_VERSION}/"
                                                     f"sobjects/{obj.name}/{r['Id']}"},
             **{n: _json_value(obj, n, r) for n in names}} for r in page]}
        if not done:
            body["nextRecordsUrl"] = (f"/services/data/v{API_VERSION}/query/"
                                      f"{cursor}-{offset + batch}")
        return 200, {"Content-Type": "application/json"}, json.dumps(
            body, default=_json_default).encode()

    # ------------------------------------------------------------------ Bulk API 2.0

    def _create_job(self, request: Request) -> Response:
        spec = request.body or {}
        operation = spec.get("operation")
        if operation not in ("query", "queryAll"):
            return _errors(400, "INVALIDJOB", f"Invalid operation: {operation}")
        if spec.get("contentType", "CSV") != "CSV":
            return _errors(400, "INVALIDJOB", "contentType must be CSV")
        try:
            query = self.parse(str(spec.get("query") or ""))
        except SoqlError as exc:
            return _errors(400, "INVALIDJOB", str(exc))
        obj = self.objects[query.sobject]
        compound = [n for n in query.fields
                    if (obj.field_named(n) or {}).get("type") in ("address", "location")]
        if compound or query.count:
            return _errors(400, "INVALIDJOB", "compound fields and aggregates are not "
                                              f"supported by Bulk API: {compound or 'COUNT()'}")
        rows = self.evaluate(query, include_deleted=operation == "queryAll")
        with self.lock:
            job_id = f"750{next(self._ids):012d}AAA"
            error = self.job_failures.pop(0) if self.job_failures else None
            job = BulkJob(job_id, operation, obj.name, query.fields, rows, error,
                          self.bulk_polls)
            self.jobs[job_id] = job
        return json_response(200, self._job_json(job))

    def _job_json(self, job: BulkJob) -> dict[str, Any]:
        body = {"id": job.id, "operation": job.operation, "object": job.sobject,
                "createdById": "005fixture", "state": job.state, "concurrencyMode":
                "Parallel", "contentType": "CSV", "apiVersion": float(API_VERSION),
                "lineEnding": "LF", "columnDelimiter": "COMMA"}
        if job.state == "JobComplete":
            body["numberRecordsProcessed"] = len(job.rows)
        if job.state == "Failed":
            body["errorMessage"] = job.error
        return body

    def _job_info(self, job_id: str) -> Response:
        job = self.jobs.get(job_id)
        if job is None:
            return _errors(404, "NOT_FOUND", f"job {job_id} does not exist")
        with self.lock:
            job.polled += 1
            if job.polled > job.polls_left:
                job.state = "Failed" if job.error else "JobComplete"
            else:
                job.state = "InProgress"
        return json_response(200, self._job_json(job))

    def _job_results(self, request: Request, job_id: str) -> Response:
        job = self.jobs.get(job_id)
        if job is None:
            return _errors(404, "NOT_FOUND", f"job {job_id} does not exist")
        if job.state != "JobComplete":
            return _errors(400, "INVALIDJOBSTATE", f"job {job_id} is {job.state}, not "
                                                   "JobComplete")
        locator = request.one("locator")
        offset = int(base64.b64decode(locator).decode()) if locator else 0
        size = int(request.one("maxRecords") or 100_000)
        page = job.rows[offset:offset + size]
        obj = self.objects[job.sobject]
        kinds = [(n, (obj.field_named(n) or {}).get("type", "string")) for n in job.fields]
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(job.fields)
        writer.writerows([_csv_value(kind, r.get(n)) for n, kind in kinds] for r in page)
        end = offset + len(page)
        next_locator = (base64.b64encode(str(end).encode()).decode()
                        if end < len(job.rows) else "null")
        return 200, {"Content-Type": "text/csv", "Sforce-Locator": next_locator,
                     "Sforce-NumberOfRecords": str(len(page))}, out.getvalue().encode()


class _Parser:
    """Recursive descent over the tokens of the SOQL subset."""

    def __init__(self, api: SalesforceApi, tokens: list[tuple[str, str]]) -> None:
        self.api, self.tokens, self.i = api, tokens, 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.upper() == word:
            self.i += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            raise SoqlError("MALFORMED_QUERY", f"expecting {word}, found {self.peek()[1]!r}")

    def query(self) -> Soql:
        self.expect("SELECT")
        names: list[str] = []
        count = False
        if self.keyword("COUNT"):
            if self.take()[1] != "(" or self.take()[1] != ")":
                raise SoqlError("MALFORMED_QUERY", "only COUNT() is supported")
            count = True
        else:
            while True:
                kind, value = self.take()
                if kind != "word":
                    raise SoqlError("MALFORMED_QUERY", f"unexpected {value!r} in SELECT")
                names.append(value)
                if self.peek()[1] != ",":
                    break
                self.take()
        self.expect("FROM")
        kind, name = self.take()
        obj = self.api.objects.get(name)
        if kind != "word" or obj is None or not obj.queryable:
            raise SoqlError("INVALID_TYPE", f"sObject type '{name}' is not supported.")
        fields = [self.field(obj, n) for n in names]
        where: list[tuple[str, str, Any]] = []
        if self.keyword("WHERE"):
            while True:
                column = self.field(obj, self.take()[1])
                op_kind, op = self.take()
                if op_kind != "op":
                    raise SoqlError("MALFORMED_QUERY", f"expecting an operator after {column}")
                where.append((column, "!=" if op == "<>" else op, self.literal()))
                if not self.keyword("AND"):
                    break
        order: list[tuple[str, bool]] = []
        if self.keyword("ORDER"):
            self.expect("BY")
            while True:
                column = self.field(obj, self.take()[1])
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                order.append((column, descending))
                if self.peek()[1] != ",":
                    break
                self.take()
        limit = None
        if self.keyword("LIMIT"):
            kind, value = self.take()
            if kind != "num":
                raise SoqlError("MALFORMED_QUERY", "LIMIT needs a number")
            limit = int(value)
        if self.peek()[0] != "end":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: {self.peek()[1]!r}")
        return Soql(obj.name, fields, count, where, order, limit)

    def field(self, obj: SObject, name: str) -> str:
        found = obj.field_named(name)
        if found is None:
            raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity "
                                             f"'{obj.name}'.")
        return str(found["name"])

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("\\'", "'")
        if kind == "dt":
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        if kind == "date":
            return date.fromisoformat(value)
        if kind == "num":
            return Decimal(value)
        if kind == "word" and value.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value.lower()]
        raise SoqlError("MALFORMED_QUERY", f"unexpected literal {value!r}")


def _compare(value: Any, op: str, literal: Any) -> bool:
    if op == "=":
        return bool(value == literal)
    if op == "!=":
        return bool(value != literal)
    if value is None or literal is None:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = Decimal(str(value))
    return bool({"<": value < literal, "<=": value <= literal, ">": value > literal,
                 ">=": value >= literal}[op])


def _errors(status: int, code: str, message: str, **headers: str) -> Response:
    return json_response(status, [{"message": message, "errorCode": code}], **headers)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def _sf_datetime(value: datetime, *, csv_form: bool) -> str:
    text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    return text + ("Z" if csv_form else "+0000")


def _json_value(obj: SObject, name: str, record: dict[str, Any]) -> Any:
    spec = obj.field_named(name) or {}
    kind = spec.get("type")
    if kind in ("address", "location"):
        parts = {_component_key(name, str(c["name"])): record.get(c["name"])
                 for c in obj.fields if c.get("compoundFieldName") == name}
        return parts if any(v is not None for v in parts.values()) else None
    value = record.get(name)
    if isinstance(value, datetime):
        return _sf_datetime(value, csv_form=False)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _component_key(compound: str, component: str) -> str:
    if compound.endswith("__c") and component.endswith("__s"):
        rest = component[len(compound) - 1:-3]
    else:
        rest = component[len(compound.removesuffix("Address")):]
    return rest[:1].lower() + rest[1:]


def _csv_value(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _sf_datetime(value, csv_form=True)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
