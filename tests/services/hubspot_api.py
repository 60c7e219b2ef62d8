"""A HubSpot CRM v3 fixture server speaking HubSpot's wire format on a real socket.

Implements what tap-dativo-hubspot reads: ``GET /crm/v3/objects/<type>`` (``limit`` up
to 100, ``after`` cursor, ``properties``), ``POST /crm/v3/objects/<type>/search``
(filterGroups with GT/GTE/LT/LTE/EQ, one sort, ``limit`` up to 200, ``after`` offsets,
and HubSpot's 10,000-result window: paging past it answers 400), ``GET
/crm/v3/properties/<type>``, ``GET /crm/v3/owners`` and ``GET
/crm/v4/objects/<type>/<id>/associations/<to_type>``. Property values are strings, as
HubSpot sends them. Bearer auth with a private-app token; HubSpot's error JSON.

``results_missing_under`` (a path prefix) makes the answers under it HTTP 200 without
their ``results`` list, as a proxy or a changed API might.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tests.services.http_fixture import FixtureApi, Request, Response, json_response

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
SEARCH_WINDOW = 10_000
MODIFIED = {"contacts": "lastmodifieddate"}  # the other objects use hs_lastmodifieddate


def modified_property(object_type: str) -> str:
    return MODIFIED.get(object_type, "hs_lastmodifieddate")


def _prop(name: str, kind: str, field_type: str, label: str = "",
          options: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "label": label or name.replace("_", " ").title(), "type": kind,
            "fieldType": field_type, "groupName": "info", "hidden": False,
            "hasUniqueValue": False, "calculated": False, "externalOptions": False,
            "options": [{"label": o.title(), "value": o, "hidden": False}
                        for o in options or []]}


def _common(object_type: str) -> list[dict[str, Any]]:
    return [_prop("createdate", "datetime", "date"),
            _prop(modified_property(object_type), "datetime", "date"),
            _prop("hs_object_id", "number", "number"),
            _prop("hubspot_owner_id", "enumeration", "select")]


PROPERTIES: dict[str, list[dict[str, Any]]] = {
    "contacts": [_prop("email", "string", "text"), _prop("firstname", "string", "text"),
                 _prop("lastname", "string", "text"), _prop("phone", "string", "phonenumber"),
                 _prop("lifecyclestage", "enumeration", "radio",
                       options=["lead", "customer"]),
                 _prop("hs_email_optout", "bool", "booleancheckbox"),
                 _prop("num_notes", "number", "number"),
                 _prop("date_of_birth", "date", "date")],
    "companies": [_prop("name", "string", "text"), _prop("domain", "string", "text"),
                  _prop("industry", "enumeration", "select"),
                  _prop("numberofemployees", "number", "number"),
                  _prop("annualrevenue", "number", "number")],
    "deals": [_prop("dealname", "string", "text"), _prop("amount", "number", "number"),
              _prop("dealstage", "enumeration", "radio",
                    options=["appointmentscheduled", "closedwon", "closedlost"]),
              _prop("pipeline", "enumeration", "select"),
              _prop("closedate", "datetime", "date"),
              _prop("deal_currency_code", "enumeration", "select")],
    "tickets": [_prop("subject", "string", "text"), _prop("content", "string", "textarea"),
                _prop("hs_pipeline", "enumeration", "select"),
                _prop("hs_pipeline_stage", "enumeration", "select"),
                _prop("hs_ticket_priority", "enumeration", "select",
                      options=["LOW", "MEDIUM", "HIGH"])],
}
for _type, _props in PROPERTIES.items():
    _props.extend(_common(_type))


def iso(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass
class HubSpotApi(FixtureApi):
    """In-memory HubSpot portal. ``clock`` is the next timestamp in ms, +1 per write
    unless ``frozen`` (to make many objects share one hs_lastmodifieddate)."""

    token: str = TOKEN
    clock: int = 1_700_000_000_000
    frozen: bool = False
    results_missing_under: str | None = None
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in PROPERTIES})
    owners: list[dict[str, Any]] = field(default_factory=list)
    associations: set[tuple[str, str, str, str]] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(101))

    def tick(self) -> int:
        if not self.frozen:
            self.clock += 1
        return self.clock

    def create(self, object_type: str, **properties: str | None) -> dict[str, Any]:
        obj_id = str(next(self._ids))
        now = iso(self.tick())
        props = {p["name"]: None for p in PROPERTIES[object_type]}
        props.update({"createdate": now, modified_property(object_type): now,
                      "hs_object_id": obj_id, **properties})
        obj = {"id": obj_id, "properties": props, "createdAt": now, "updatedAt": now,
               "archived": False}
        with self.lock:
            self.objects[object_type][obj_id] = obj
        return obj

    def update(self, object_type: str, obj_id: str, **properties: str | None
               ) -> dict[str, Any]:
        now = iso(self.tick())
        with self.lock:
            obj = self.objects[object_type][obj_id]
            obj["properties"].update(properties)
            obj["properties"][modified_property(object_type)] = now
            obj["updatedAt"] = now
        return obj

    def add_owner(self, email: str) -> dict[str, Any]:
        owner_id = str(next(self._ids))
        now = iso(self.tick())
        owner = {"id": owner_id, "email": email, "firstName": email.split("@")[0].title(),
                 "lastName": "Owner", "userId": int(owner_id) * 10, "createdAt": now,
                 "updatedAt": now, "archived": False,
                 "teams": [{"id": "7", "name": "Sales", "primary": True}]}
        self.owners.append(owner)
        return owner

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self.associations.add((from_type, from_id, to_type, to_id))

    def error_body(self, status: int) -> dict[str, Any]:
        category = {429: "RATE_LIMITS", 401: "INVALID_AUTHENTICATION"}.get(status, "ERROR")
        message = {429: "You have reached your secondly limit.",
                   401: "Authentication credentials not found."}.get(
                       status, "internal error")
        return {"status": "error", "message": message, "category": category,
                "correlationId": "0000-fixture"}

    def route(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return json_response(401, self.error_body(401))
        if self.results_missing_under and request.path.startswith(self.results_missing_under):
            return json_response(200, {"paging": {}, "status": "COMPLETE"})
        return self._route(request)

    def _route(self, request: Request) -> Response:
        path = request.path
        if match := re.fullmatch(r"/crm/v3/properties/(\w+)", path):
            return self._known(match[1]) or json_response(
                200, {"results": PROPERTIES[match[1]]})
        if match := re.fullmatch(r"/crm/v3/objects/(\w+)/search", path):
            return self._known(match[1]) or self._search(match[1], request.body or {})
        if match := re.fullmatch(r"/crm/v3/objects/(\w+)", path):
            return self._known(match[1]) or self._list(match[1], request)
        if path == "/crm/v3/owners":
            return json_response(200, self._cursor_page(self.owners, request))
        if match := re.fullmatch(r"/crm/v4/objects/(\w+)/(\d+)/associations/(\w+)", path):
            return self._associations(*match.groups())
        return json_response(404, {"status": "error", "message": f"no route {path}",
                                   "category": "OBJECT_NOT_FOUND"})

    def _known(self, object_type: str) -> Response | None:
        if object_type in PROPERTIES:
            return None
        return json_response(400, {
            "status": "error", "category": "VALIDATION_ERROR", "correlationId": "0000",
            "message": f"Unable to infer object type from: {object_type}"})

    def _select(self, obj: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
        props = obj["properties"]
        keep = names if names else ["createdate", "hs_object_id", "lastmodifieddate"]
        return {**obj, "properties": {k: props.get(k) for k in keep if k in props}}

    def _list(self, object_type: str, request: Request) -> Response:
        names = (request.one("properties") or "").split(",") if request.one(
            "properties") else None
        with self.lock:
            items = sorted(self.objects[object_type].values(), key=lambda o: int(o["id"]))
        page = self._cursor_page([self._select(o, names) for o in items], request)
        return json_response(200, page)

    @staticmethod
    def _cursor_page(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
        limit = min(100, int(request.one("limit") or 10))
        after = request.one("after")
        start = next((i for i, o in enumerate(items) if int(o["id"]) >= int(after)),
                     len(items)) if after else 0
        page = items[start:start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(items):
            nxt = items[start + limit]["id"]
            body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return body

    def _search(self, object_type: str, body: dict[str, Any]) -> Response:
        limit = min(200, int(body.get("limit", 10)))
        after = int(body.get("after") or 0)
        if after + limit > SEARCH_WINDOW:
            return json_response(400, {
                "status": "error", "category": "VALIDATION_ERROR", "correlationId": "0000",
                "message": "There was a problem with the request. The maximum number of "
                           "results a search can page through is 10000."})
        with self.lock:
            items = [o for o in self.objects[object_type].values()
                     if self._passes(o, body.get("filterGroups") or [])]
        for sort in reversed(body.get("sorts") or []):
            items.sort(key=lambda o, s=sort: _sort_key(o["properties"].get(s["propertyName"])),
                       reverse=sort.get("direction") == "DESCENDING")
        page = items[after:after + limit]
        out: dict[str, Any] = {"total": len(items),
                               "results": [self._select(o, body.get("properties"))
                                           for o in page]}
        if after + limit < len(items):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(200, out)

    @staticmethod
    def _passes(obj: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
        if not groups:
            return True
        return any(all(_test(obj["properties"].get(f["propertyName"]), f)
                       for f in group.get("filters", [])) for group in groups)

    def _associations(self, from_type: str, from_id: str, to_type: str) -> Response:
        type_ids = {"companies": 1, "deals": 4}
        results = [{"toObjectId": int(t_id), "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": type_ids.get(to_type, 0),
                         "label": None}]}
                   for f_type, f_id, t_type, t_id in sorted(self.associations)
                   if (f_type, f_id, t_type) == (from_type, from_id, to_type)]
        return json_response(200, {"results": results})


def _sort_key(value: str | None) -> tuple[int, float | str]:
    if value is None:
        return (1, 0)
    try:
        return (0, _ms(value))
    except ValueError:
        return (0, value)


def _ms(value: str) -> float:
    """HubSpot compares datetimes as epoch ms; filter values may be either form."""
    if re.fullmatch(r"\d+", value):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


def _test(value: str | None, flt: dict[str, Any]) -> bool:
    if value is None:
        return False
    left, right = _ms(value), _ms(str(flt["value"]))
    return {"GT": left > right, "GTE": left >= right, "LT": left < right,
            "LTE": left <= right, "EQ": left == right}[flt["operator"]]
