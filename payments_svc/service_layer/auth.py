"""Who is calling: the platform admin key or a merchant's API key, from `authorization`.

Merchant secrets are 256-bit random strings (`sk_…`), stored as SHA-256 hashes (a fast hash is
enough for a secret of that entropy) and looked up by hash on every call. There is no cache, so a
revoked key stops working at once on every replica.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets

from sqlalchemy.ext.asyncio import AsyncEngine

from chassis import errors
from payments_svc.adapters import repository
from payments_svc.domain.merchants import Merchant, Permission, Role, require
from payments_svc.service_layer.errors import translated

SECRET_PREFIX = "sk_"
SECRET_BYTES = 32
PLATFORM_SCOPE = "platform"
# sk_ + 43 url-safe characters for merchant keys; admin keys come from configuration.
_SECRET_PATTERN = re.compile(r"^sk_[A-Za-z0-9_\-]{16,200}$")


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of one request."""

    is_platform: bool
    merchant: Merchant | None = None
    key_id: str = ""
    principal: str = ""
    role: Role | None = None

    @property
    def scope(self) -> str:
        """Idempotency scope: the merchant id, or "platform"."""
        return self.merchant.id if self.merchant else PLATFORM_SCOPE

    def require(self, permission: Permission) -> Merchant:
        """The caller's merchant, if its key's role grants `permission` (merchant keys only)."""
        if self.merchant is None or self.role is None:
            raise errors.PermissionDenied(
                "this call needs a merchant API key", reason="MERCHANT_KEY_REQUIRED"
            )
        with translated():
            require(self.role, permission)
        return self.merchant

    def require_platform(self) -> None:
        """Only the platform admin key."""
        if not self.is_platform:
            raise errors.PermissionDenied(
                "this call needs the platform admin key", reason="PLATFORM_ADMIN_REQUIRED"
            )

    def require_merchant_access(self, merchant_id: str, permission: Permission) -> None:
        """The platform admin, or a key of `merchant_id` whose role grants `permission`.

        Another merchant's id is NOT_FOUND, never PERMISSION_DENIED (tenants cannot probe ids).
        """
        if self.is_platform:
            return
        if self.merchant is None or self.merchant.id != merchant_id:
            raise errors.NotFound("no such merchant", reason="MERCHANT_NOT_FOUND")
        self.require(permission)


def new_secret() -> str:
    """A new merchant secret (`sk_` + 256 random bits, url-safe)."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """What is stored and looked up: SHA-256 of the secret, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Authenticator:
    """Turns the bearer credential of a call into a Caller."""

    def __init__(self, engine: AsyncEngine, admin_key: str) -> None:
        self._engine = engine
        self._admin_key = admin_key.encode()

    async def authenticate(self, bearer_token: str | None) -> Caller:
        """The caller, or UNAUTHENTICATED (missing, malformed, unknown or revoked key)."""
        if not bearer_token:
            raise errors.Unauthenticated(
                "an API key is required: Authorization: Bearer <key>", reason="API_KEY_MISSING"
            )
        if hmac.compare_digest(bearer_token.encode(), self._admin_key):
            return Caller(is_platform=True, principal="platform_admin")
        if not _SECRET_PATTERN.match(bearer_token):
            raise errors.Unauthenticated("the API key is malformed", reason="API_KEY_MALFORMED")
        async with self._engine.connect() as connection:
            found = await repository.find_api_key_with_merchant(connection, hash_secret(bearer_token))
        if found is None:
            raise errors.Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
        key, merchant = found
        if key.revoked_at is not None:
            raise errors.Unauthenticated("the API key was revoked", reason="API_KEY_REVOKED")
        return Caller(
            is_platform=False, merchant=merchant, key_id=key.id, principal=key.principal, role=key.role
        )
