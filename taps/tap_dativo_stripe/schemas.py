"""The Stripe objects the tap reads: their paths, event types and JSON schemas.

A field spec is one letter per JSON type, so each object fits on a few lines:
``s`` string, ``i`` integer (amounts stay integers in minor units), ``b`` boolean,
``t`` Unix timestamp (sent as an RFC 3339 UTC string), ``o`` object, ``x`` an id, or the
object itself when the ``expand`` setting names the field (then the column is an object),
``l`` a Stripe list object.
Fields Stripe adds that are not listed here are kept under ``extra`` (see streams.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMMON = "id:s object:s created:t"
MUTABLE = "livemode:b metadata:o"  # balance transactions have neither
TYPES: dict[str, list[str] | dict[str, Any]] = {
    "s": ["string", "null"], "i": ["integer", "null"], "b": ["boolean", "null"],
    "o": ["object", "null"], "x": ["string", "null"], "l": ["object", "null"],
}


@dataclass(frozen=True, slots=True)
class StripeObject:
    """One stream: list path, object type, the prefix of its events, and its fields."""

    name: str
    path: str
    object_type: str
    event_prefix: str
    fields: str
    list_params: tuple[tuple[str, str], ...] = ()

    @property
    def field_types(self) -> dict[str, str]:
        if self.object_type == "line_item":
            spec = self.fields
        elif self.object_type == "balance_transaction":
            spec = f"{COMMON} {self.fields}"
        else:
            spec = f"{COMMON} {MUTABLE} {self.fields}"
        return dict(item.split(":") for item in spec.split())

    @property
    def timestamp_fields(self) -> tuple[str, ...]:
        return tuple(k for k, v in self.field_types.items() if v == "t")

    def json_schema(self, expanded: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The stream's schema; ``expanded`` fields are objects instead of ids."""
        props: dict[str, Any] = {}
        for key, code in self.field_types.items():
            if key in expanded:
                props[key] = {"type": ["object", "null"]}
            elif code == "t":
                props[key] = {"type": ["string", "null"], "format": "date-time"}
            else:
                props[key] = {"type": TYPES[code]}
        props["id"] = {"type": "string"}
        if self.event_prefix:
            props["deleted"] = {"type": ["boolean", "null"],
                                "description": "true when a *.deleted event gave the object"}
        props["extra"] = {"type": ["object", "null"],
                          "description": "Fields Stripe sent that this schema does not list"}
        return {"type": "object", "properties": props, "required": ["id"]}


OBJECTS: tuple[StripeObject, ...] = (
    StripeObject("customers", "/v1/customers", "customer", "customer",
                 "email:s name:s description:s phone:s currency:s balance:i delinquent:b "
                 "address:o invoice_prefix:s default_source:x"),
    StripeObject("charges", "/v1/charges", "charge", "charge",
                 "amount:i amount_captured:i amount_refunded:i currency:s customer:x paid:b "
                 "captured:b refunded:b status:s description:s payment_intent:x invoice:x "
                 "balance_transaction:x failure_code:s failure_message:s billing_details:o"),
    StripeObject("invoices", "/v1/invoices", "invoice", "invoice",
                 "customer:x subscription:x status:s currency:s amount_due:i amount_paid:i "
                 "amount_remaining:i subtotal:i total:i number:s paid:b period_start:t "
                 "period_end:t due_date:t"),
    StripeObject("invoice_line_items", "/v1/invoices/{invoice_id}/lines", "line_item", "",
                 "id:s object:s invoice:s amount:i currency:s description:s quantity:i "
                 "period:o livemode:b metadata:o price:o"),
    StripeObject("subscriptions", "/v1/subscriptions", "subscription",
                 "customer.subscription",
                 "customer:x status:s currency:s cancel_at_period_end:b canceled_at:t "
                 "ended_at:t start_date:t current_period_start:t current_period_end:t "
                 "items:l", (("status", "all"),)),
    StripeObject("products", "/v1/products", "product", "product",
                 "name:s active:b description:s type:s updated:t default_price:x"),
    StripeObject("prices", "/v1/prices", "price", "price",
                 "product:x active:b currency:s unit_amount:i type:s nickname:s recurring:o"),
    StripeObject("payment_intents", "/v1/payment_intents", "payment_intent", "payment_intent",
                 "amount:i amount_received:i currency:s customer:x status:s latest_charge:x "
                 "canceled_at:t description:s"),
    StripeObject("refunds", "/v1/refunds", "refund", "refund",
                 "amount:i currency:s charge:x payment_intent:x status:s reason:s"),
    # Balance transactions never change once created: no events to follow.
    StripeObject("balance_transactions", "/v1/balance_transactions", "balance_transaction",
                 "", "amount:i fee:i net:i currency:s type:s status:s available_on:t "
                 "source:x description:s reporting_category:s"),
    StripeObject("events", "/v1/events", "event", "",
                 "type:s api_version:s data:o pending_webhooks:i request:o"),
)
BY_NAME = {o.name: o for o in OBJECTS}
