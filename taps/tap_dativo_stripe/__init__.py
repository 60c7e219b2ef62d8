"""tap-dativo-stripe: Stripe objects to Singer through the official stripe library."""
