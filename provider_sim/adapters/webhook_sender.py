"""HTTP client that POSTs signed webhook bodies to the platform (httpx, traced by its instrumentation)."""

from __future__ import annotations

import dataclasses

import httpx

from chassis.context import PROVIDER_SIGNATURE

# Longest response body excerpt kept in an error message.
ERROR_EXCERPT_CHARS_MAX = 120


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    """Outcome of one POST: delivered on any 2xx."""

    delivered: bool
    error: str = ""


class HttpWebhookSender:
    """Sends one webhook copy per call; never raises for network or HTTP failures."""

    def __init__(self, timeout_seconds: float) -> None:
        self._client = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)

    async def send(self, url: str, body: bytes, signature: str) -> SendResult:
        headers = {
            "Content-Type": "application/json",
            # Header name as documented: Provider-Signature (HTTP header names are case-insensitive).
            PROVIDER_SIGNATURE.title(): signature,
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return SendResult(False, f"{type(error).__name__}: {error}"[:ERROR_EXCERPT_CHARS_MAX])
        if 200 <= response.status_code < 300:
            return SendResult(True)
        return SendResult(False, f"HTTP {response.status_code}")

    async def close(self) -> None:
        await self._client.aclose()
