"""tap-dativo-hubspot: HubSpot CRM v3 objects to Singer (singer-sdk REST streams)."""
