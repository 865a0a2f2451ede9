"""HTTP delivery of webhooks, with the SSRF check after DNS resolution.

httpx; the chassis instruments it for traces.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
import urllib.parse

import httpx

from chassis import signatures
from payments_svc.domain.errors import InvalidRequest
from payments_svc.domain.webhooks import RESPONSE_SNIPPET_LENGTH_MAX, check_public_address

SIGNATURE_HEADER = "Clearhouse-Signature"
ERROR_LENGTH_MAX = 200


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    """What one POST got: a status (0 when there was no response), latency, snippet, error."""

    http_status: int
    latency_ms: int
    response_snippet: str = ""
    error: str = ""


class WebhookSender:
    """POSTs signed event bodies to merchant endpoints."""

    def __init__(self, timeout_seconds: float, allow_private: bool) -> None:
        self._timeout_seconds = timeout_seconds
        self._allow_private = allow_private
        self._client = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)

    async def _check_target(self, url: str) -> None:
        if self._allow_private:
            return
        host = urllib.parse.urlsplit(url).hostname or ""
        # Resolve now and refuse internal addresses: a public name may point inside (DNS rebinding).
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        for info in infos:
            check_public_address(str(info[4][0]))

    async def send(self, url: str, secret: str, body: bytes) -> SendResult:
        """POST `body` with `Clearhouse-Signature: t=…,v1=…`."""
        started = time.perf_counter()
        try:
            await self._check_target(url)
            response = await self._client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signatures.sign(secret, body),
                    "User-Agent": "Clearhouse-Webhooks/1",
                },
            )
        except InvalidRequest as refused:
            return SendResult(0, _elapsed_ms(started), error=refused.message[:ERROR_LENGTH_MAX])
        except (httpx.HTTPError, OSError) as failure:
            return SendResult(
                0, _elapsed_ms(started), error=f"{type(failure).__name__}: {failure}"[:ERROR_LENGTH_MAX]
            )
        return SendResult(
            response.status_code, _elapsed_ms(started), response.text[:RESPONSE_SNIPPET_LENGTH_MAX]
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
