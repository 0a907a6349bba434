"""Helpers for the client tests: run either client's calls, record retry waits."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterable
from typing import Any

from libnar.sama import AsyncSamaClient, SamaClient

Client = SamaClient | AsyncSamaClient


class Waits(list[float]):
    """The waits retries asked for, instead of sleeping through them."""

    def sleep(self, seconds: float) -> None:
        self.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.append(seconds)


def make_client(kind: str, waits: Waits, **options: Any) -> Client:
    if kind == "sync":
        return SamaClient(sleep=waits.sleep, **options)
    return AsyncSamaClient(sleep=waits.async_sleep, **options)


async def close(client: Client) -> None:
    if isinstance(client, AsyncSamaClient):
        await client.aclose()
    else:
        client.close()


async def run(value: Any) -> Any:
    """Await what the async client returns; pass the sync client's results through."""
    return await value if inspect.isawaitable(value) else value


async def collect(items: Iterable[Any] | AsyncIterator[Any]) -> list[Any]:
    """List an iterator of either kind."""
    if isinstance(items, AsyncIterator):
        return [item async for item in items]
    return list(items)
