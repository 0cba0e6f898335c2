"""Products: cache-aside with ``@cached`` and tags; a price change invalidates the tag.

The response says whether it came from the cache: the loader below runs only on a miss,
and it marks the request (a context variable) when it does.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from redkit.cache import AsyncCache
from redkit.demo.catalog import Catalog

TAG = "products"
_loaded: ContextVar[bool] = ContextVar("redkit_demo_loaded", default=False)


class PriceChange(BaseModel):
    """The body of ``PUT /products/{id}``."""

    price: float = Field(gt=0, lt=1_000_000)


def router(
    cache: AsyncCache, catalog: Catalog, *, api_limit: Any, login_required: Any
) -> APIRouter:
    """The product routes, rate limited by ``api_limit`` (a FastAPI dependency)."""
    routes = APIRouter(dependencies=[Depends(api_limit)])

    @cache.cached(ttl=60, tags=[TAG], name="demo.products")
    async def products(lang: str) -> list[dict[str, Any]]:
        _loaded.set(True)
        return await catalog.all(lang)

    @routes.get("/products")
    async def list_products(lang: str = "en") -> dict[str, Any]:
        _loaded.set(False)
        items = await products(lang if lang in ("en", "fr") else "en")
        return {"products": items, "cache": "miss" if _loaded.get() else "hit"}

    @routes.put("/products/{product_id}", dependencies=[Depends(login_required)])
    async def set_price(product_id: str, change: PriceChange) -> dict[str, Any]:
        product = await catalog.update_price(product_id, change.price)
        if product is None:
            raise HTTPException(404, "No such product")
        await cache.invalidate_tags(TAG)  # O(1): every cached product list is now stale
        return {"product": product}

    return routes
