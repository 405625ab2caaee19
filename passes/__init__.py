"""Rewrite passes over the mlc IR, one module per pass; importing this package registers them."""

from mlc.passes import cse, dce, dedupe_constants, eliminate_identity

__all__ = ["cse", "dce", "dedupe_constants", "eliminate_identity"]
