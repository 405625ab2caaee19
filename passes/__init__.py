"""Rewrite passes over the mlc IR, one module per pass (registered by name)."""
