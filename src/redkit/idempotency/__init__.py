"""Idempotency keys: one execution per key, the stored result replayed to repeats."""

from __future__ import annotations

from redkit.idempotency.idempotency import AsyncIdempotency, Idempotency, IdempotencyOptions

__all__ = ["AsyncIdempotency", "Idempotency", "IdempotencyOptions"]
