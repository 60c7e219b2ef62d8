"""singer-sdk's standard tap test suite (``get_tap_test_class``) against the HubSpot fixture.

The suite builds its test methods from the tap's streams (discovered from the portal's
properties) when this module is imported, so the fixture API starts at import.
"""

from __future__ import annotations

import atexit

from singer_sdk.testing import get_tap_test_class

from tap_dativo_hubspot.tap import TapDativoHubSpot
from tests.services.hubspot_api import TOKEN, HubSpotApi


def _portal() -> HubSpotApi:
    api = HubSpotApi().start()
    atexit.register(api.stop)
    owner = api.add_owner("owner@example.com")
    for n in range(3):
        contact = api.create("contacts", email=f"c{n}@example.com", firstname=f"F{n}",
                             lastname="Doe", phone="+1 555 0100", lifecyclestage="lead",
                             hs_email_optout="false", num_notes=str(n),
                             date_of_birth="1990-01-0" + str(n + 1),
                             hubspot_owner_id=owner["id"])
        company = api.create("companies", name=f"Co {n}", domain=f"co{n}.example",
                             industry="SOFTWARE", numberofemployees="12",
                             annualrevenue="1000000.50", hubspot_owner_id=owner["id"])
        deal = api.create("deals", dealname=f"Deal {n}", amount="1500.25",
                          dealstage="closedwon", pipeline="default",
                          closedate="2024-03-01T12:00:00.000Z", deal_currency_code="EUR",
                          hubspot_owner_id=owner["id"])
        api.create("tickets", subject=f"Ticket {n}", content="Help", hs_pipeline="0",
                   hs_pipeline_stage="1", hs_ticket_priority="HIGH",
                   hubspot_owner_id=owner["id"])
        api.associate("contacts", contact["id"], "companies", company["id"])
        api.associate("contacts", contact["id"], "deals", deal["id"])
    return api


API = _portal()
CONFIG = {"access_token": TOKEN, "api_base": API.url, "requests_per_second": 0}

TestTapDativoHubSpot = get_tap_test_class(TapDativoHubSpot, config=CONFIG,
                                          parse_env_config=False)
