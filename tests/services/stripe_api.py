"""A Stripe API fixture server speaking Stripe's wire format on a real socket.

Implements what tap-dativo-stripe reads: ``GET /v1/<resource>`` list objects (newest
first, ``limit`` 1..100 default 10, ``starting_after``, ``created[gt|gte|lt|lte]``,
``expand[]``/``expand[N]``, ``type``/``types[]`` on events), ``GET /v1/invoices/<id>/lines``,
Bearer auth, ``Request-Id`` headers and Stripe's error JSON. Objects are made with
:meth:`StripeApi.create` and changed with :meth:`StripeApi.update`, which record
``<type>.created`` / ``<type>.updated`` events the way Stripe does.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from tests.services.http_fixture import FixtureApi, Request, Response, json_response

API_KEY = "sk_test_fixture_4eC39HqLyjWDarjtT1zdp7dc"

# resource path -> (object type, id prefix, event type prefix)
RESOURCES: dict[str, tuple[str, str, str]] = {
    "customers": ("customer", "cus", "customer"),
    "charges": ("charge", "ch", "charge"),
    "invoices": ("invoice", "in", "invoice"),
    "subscriptions": ("subscription", "sub", "customer.subscription"),
    "products": ("product", "prod", "product"),
    "prices": ("price", "price", "price"),
    "payment_intents": ("payment_intent", "pi", "payment_intent"),
    "refunds": ("refund", "re", "refund"),
    "balance_transactions": ("balance_transaction", "txn", ""),
    "events": ("event", "evt", ""),
}
EXPANDABLE = {"customer": "customers", "invoice": "invoices", "charge": "charges",
              "product": "products", "payment_intent": "payment_intents",
              "balance_transaction": "balance_transactions"}


def _defaults(kind: str, obj_id: str) -> dict[str, Any]:
    """Realistic shapes (trimmed to the fields the tap maps)."""
    common = {"livemode": False, "metadata": {}}
    match kind:
        case "customers":
            return {**common, "email": f"{obj_id}@example.com", "name": "Jenny Rosen",
                    "currency": "usd", "balance": 0, "delinquent": False,
                    "description": None, "phone": None, "address": None,
                    "invoice_prefix": obj_id[-6:].upper(), "default_source": None}
        case "charges":
            return {**common, "amount": 2000, "amount_captured": 2000, "amount_refunded": 0,
                    "currency": "usd", "customer": None, "paid": True, "captured": True,
                    "refunded": False, "status": "succeeded", "description": None,
                    "payment_intent": None, "invoice": None, "balance_transaction": None,
                    "failure_code": None, "failure_message": None,
                    "billing_details": {"email": None, "name": None}}
        case "invoices":
            return {**common, "customer": None, "status": "paid", "currency": "usd",
                    "amount_due": 2000, "amount_paid": 2000, "amount_remaining": 0,
                    "subtotal": 2000, "total": 2000, "number": None, "paid": True,
                    "period_start": None, "period_end": None, "due_date": None,
                    "subscription": None}
        case "subscriptions":
            return {**common, "customer": None, "status": "active", "currency": "usd",
                    "cancel_at_period_end": False, "canceled_at": None, "ended_at": None,
                    "start_date": None, "current_period_start": None,
                    "current_period_end": None,
                    "items": {"object": "list", "data": [], "has_more": False}}
        case "products":
            return {**common, "name": "Gold plan", "active": True, "description": None,
                    "type": "service", "updated": None, "default_price": None}
        case "prices":
            return {**common, "product": None, "active": True, "currency": "usd",
                    "unit_amount": 2000, "type": "recurring", "nickname": None,
                    "recurring": {"interval": "month", "interval_count": 1}}
        case "payment_intents":
            return {**common, "amount": 2000, "amount_received": 2000, "currency": "usd",
                    "customer": None, "status": "succeeded", "latest_charge": None,
                    "canceled_at": None, "description": None}
        case "refunds":
            return {**common, "amount": 500, "currency": "usd", "charge": None,
                    "payment_intent": None, "status": "succeeded", "reason": None}
        case "balance_transactions":
            return {"amount": 2000, "fee": 88, "net": 1912, "currency": "usd",
                    "type": "charge", "status": "available", "available_on": None,
                    "source": None, "description": None, "reporting_category": "charge",
                    "exchange_rate": None,
                    "fee_details": [{"amount": 88, "currency": "usd", "type": "stripe_fee",
                                     "description": "Stripe processing fees"}]}
    return dict(common)


@dataclass
class StripeApi(FixtureApi):
    """In-memory Stripe account. ``clock`` is the next ``created`` (seconds), +1 per object."""

    api_key: str = API_KEY
    clock: int = 1_700_000_000
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in RESOURCES})
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def create(self, kind: str, **fields: Any) -> dict[str, Any]:
        obj_type, prefix, _ = RESOURCES[kind]
        obj_id = f"{prefix}_{next(self._ids):014d}"
        obj = {"id": obj_id, "object": obj_type, "created": self.tick(),
               **_defaults(kind, obj_id), **fields}
        with self.lock:
            self.objects[kind][obj_id] = obj
        self._event(kind, "created", obj)
        return obj

    def add_line(self, invoice_id: str, **fields: Any) -> dict[str, Any]:
        line = {"id": f"il_{next(self._ids):014d}", "object": "line_item",
                "invoice": invoice_id, "amount": 1000, "currency": "usd",
                "description": "1 x Gold plan", "quantity": 1,
                "period": {"start": self.clock, "end": self.clock + 2_592_000},
                "metadata": {}, "livemode": False, **fields}
        with self.lock:
            self.lines.setdefault(invoice_id, []).append(line)
        return line

    def update(self, kind: str, obj_id: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            obj = self.objects[kind][obj_id]
            previous = {k: obj.get(k) for k in fields}
            obj.update(fields)
        self._event(kind, "updated", obj, previous)
        return obj

    def _event(self, kind: str, action: str, obj: dict[str, Any],
               previous: dict[str, Any] | None = None) -> None:
        prefix = RESOURCES[kind][2]
        if not prefix:
            return
        event_id = f"evt_{next(self._ids):014d}"
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {"id": event_id, "object": "event", "type": f"{prefix}.{action}",
                 "created": self.tick(), "api_version": "2024-06-20", "data": data,
                 "livemode": False, "pending_webhooks": 0,
                 "request": {"id": None, "idempotency_key": None}}
        with self.lock:
            self.objects["events"][event_id] = event

    def error_body(self, status: int) -> dict[str, Any]:
        kinds = {429: ("rate_limit", "Too many requests hit the API too quickly."),
                 401: ("invalid_request_error", "Invalid API Key provided: sk_test_****")}
        kind, message = kinds.get(status, ("api_error", "An unknown error occurred."))
        return {"error": {"type": kind, "message": message}}

    def route(self, request: Request) -> Response:
        request_id = {"Request-Id": f"req_{len(self.requests):06d}"}
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return json_response(401, self.error_body(401), **request_id)
        if match := re.fullmatch(r"/v1/invoices/([^/]+)/lines", request.path):
            if match.group(1) not in self.objects["invoices"]:
                return self._missing(f"No such invoice: '{match.group(1)}'", request_id)
            return json_response(200, self._page(request, list(self.lines.get(
                match.group(1), [])), request.path, sort=False), **request_id)
        kind = request.path.removeprefix("/v1/")
        if kind not in RESOURCES:
            return self._missing(f"Unrecognized request URL (GET: {request.path}).",
                                 request_id)
        with self.lock:
            items = sorted(self.objects[kind].values(),
                           key=lambda o: (o["created"], o["id"]), reverse=True)
        for path in self._expands(request):
            if path.removeprefix("data.") not in EXPANDABLE:
                return json_response(400, {"error": {
                    "type": "invalid_request_error", "param": "expand",
                    "message": f"This property cannot be expanded ({path})."}}, **request_id)
        page = self._page(request, [o for o in items if self._matches(o, request)],
                          request.path)
        page["data"] = [copy.deepcopy(o) for o in page["data"]]
        self._expand(page["data"], self._expands(request))
        return json_response(200, page, **request_id)

    def _missing(self, message: str, headers: dict[str, str]) -> Response:
        return json_response(404, {"error": {"type": "invalid_request_error",
                                             "message": message}}, **headers)

    @staticmethod
    def _matches(obj: dict[str, Any], request: Request) -> bool:
        created = obj["created"]
        for op, test in (("gte", created.__ge__), ("gt", created.__gt__),
                         ("lte", created.__le__), ("lt", created.__lt__)):
            value = request.one(f"created[{op}]")
            if value is not None and not test(int(value)):
                return False
        types = [v for k, vs in request.query.items() if k.startswith("types[")
                 for v in vs] + request.query.get("type", [])
        if types and obj.get("object") == "event":
            return any(obj["type"] == t or (t.endswith("*") and obj["type"].startswith(t[:-1]))
                       for t in types)
        status = request.one("status")
        return status in (None, "all") or obj.get("status") == status

    @staticmethod
    def _page(request: Request, items: list[dict[str, Any]], url: str,
              sort: bool = True) -> dict[str, Any]:
        limit = max(1, min(100, int(request.one("limit") or 10)))
        after = request.one("starting_after")
        if after:
            ids = [o["id"] for o in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        return {"object": "list", "url": url, "has_more": len(items) > limit,
                "data": items[:limit]}

    @staticmethod
    def _expands(request: Request) -> list[str]:
        return [v for k, vs in request.query.items()
                if k == "expand[]" or re.fullmatch(r"expand\[\d+\]", k) for v in vs]

    def _expand(self, data: list[dict[str, Any]], paths: list[str]) -> None:
        for path in paths:
            field_name = path.removeprefix("data.")
            kind = EXPANDABLE.get(field_name)
            for obj in data:
                if kind and isinstance(obj.get(field_name), str):
                    obj[field_name] = copy.deepcopy(self.objects[kind].get(obj[field_name]))
