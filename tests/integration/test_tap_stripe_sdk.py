"""singer-sdk's standard tap test suite (``get_tap_test_class``) against the Stripe fixture.

The suite builds its test methods from the tap's streams when this module is imported,
before any fixture runs, so the fixture API starts at import (stopped at exit).
"""

from __future__ import annotations

import atexit

from singer_sdk.testing import get_tap_test_class

from tap_dativo_stripe.tap import TapDativoStripe
from tests.services.stripe_api import API_KEY, StripeApi


def _account() -> StripeApi:
    api = StripeApi().start()
    atexit.register(api.stop)
    for n in range(3):
        customer = api.create("customers", email=f"c{n}@example.com")
        product = api.create("products", name=f"Plan {n}")
        price = api.create("prices", product=product["id"], unit_amount=1000 + n)
        charge = api.create("charges", customer=customer["id"], amount=500 * (n + 1))
        api.create("refunds", charge=charge["id"], amount=100)
        api.create("payment_intents", customer=customer["id"])
        api.create("balance_transactions", source=charge["id"])
        api.create("subscriptions", customer=customer["id"], start_date=api.clock,
                   current_period_start=api.clock, current_period_end=api.clock + 86400)
        invoice = api.create("invoices", customer=customer["id"], period_start=api.clock,
                             period_end=api.clock + 86400)
        api.add_line(invoice["id"], price=price)
    return api


API = _account()
CONFIG = {"api_key": API_KEY, "api_base": API.url, "requests_per_second": 0}

TestTapDativoStripe = get_tap_test_class(TapDativoStripe, config=CONFIG,
                                         parse_env_config=False)
