"""The demo's product "database": a Redis hash standing in for a slow SQL table.

It lives in Redis (not in process memory) so that two demo processes share it, as two
app instances share a real database. Every read waits ``DB_LATENCY`` seconds, so the
difference a cache hit makes is visible.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from redkit import AsyncRedkit, ops

DB_LATENCY = 0.05

SEED: dict[str, dict[str, Any]] = {
    "1": {"id": "1", "name": {"en": "Teapot", "fr": "Théière"}, "price": 25.0},
    "2": {"id": "2", "name": {"en": "Espresso cup", "fr": "Tasse à expresso"}, "price": 9.5},
    "3": {"id": "3", "name": {"en": "Coffee grinder", "fr": "Moulin à café"}, "price": 79.0},
    "4": {"id": "4", "name": {"en": "Kettle", "fr": "Bouilloire"}, "price": 39.0},
}


class Catalog:
    """Products in one Redis hash; reads are slowed down on purpose."""

    def __init__(self, ark: AsyncRedkit) -> None:
        self._ark = ark
        self._key = ark.keys.group("demo", "catalog").key("products")

    async def seed(self) -> None:
        """Fill the catalog once (HSETNX: a second demo process keeps the first's data)."""
        for product_id, product in SEED.items():
            await self._ark.run(ops.command("HSETNX", self._key, product_id, orjson.dumps(product)))

    async def all(self, lang: str) -> list[dict[str, Any]]:
        """Every product, names in ``lang`` (English when missing). Slow on purpose."""
        await asyncio.sleep(DB_LATENCY)
        raw = await self._ark.run(ops.command("HVALS", self._key))
        products = [orjson.loads(value) for value in raw]
        return [_localized(p, lang) for p in sorted(products, key=lambda p: int(p["id"]))]

    async def update_price(self, product_id: str, price: float) -> dict[str, Any] | None:
        """Set a product's price; None when there is no such product."""
        raw = await self._ark.run(ops.command("HGET", self._key, product_id))
        if raw is None:
            return None
        product = orjson.loads(raw)
        product["price"] = price
        await self._ark.run(ops.command("HSET", self._key, product_id, orjson.dumps(product)))
        return _localized(product, "en")


def _localized(product: dict[str, Any], lang: str) -> dict[str, Any]:
    names = product["name"]
    return {"id": product["id"], "name": names.get(lang, names["en"]), "price": product["price"]}
