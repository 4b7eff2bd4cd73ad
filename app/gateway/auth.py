"""Bearer tokens: verify the end user's JWT (PyJWT) and mint development tokens.

A token names the user (``sub``), the tenant (``tenant``) and the plan (``plan``) and expires (``exp``); all
four are required. HS256 tokens are checked with ``SWITCHBOARD_JWT_SECRET``; RS256 tokens with the public key
when one is configured (an identity provider signs, the gateway only verifies). The algorithm is taken from
the token's header only to pick the key of that type: a token can never make the gateway use the public key
as an HMAC secret (the classic algorithm-confusion attack), because each algorithm has its own key and PyJWT
is told to accept that one algorithm alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import jwt

from app.channels.turns import ID_PATTERN, TENANT_PATTERN

# The same patterns as the REST channel (app/channels/rest.py, which the main env cannot import).
REQUIRED_CLAIMS = ("sub", "tenant", "plan", "exp")
MAX_TTL_S = 30 * 24 * 3600  # dev tokens live at most 30 days
LEEWAY_S = 5  # clock skew between the token's issuer and the gateway


class GatewayError(Exception):
    """A request the gateway answers itself: HTTP status, a machine-readable code and a message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def unauthorized(code: str, message: str) -> GatewayError:
    """A 401 with the RFC 6750 challenge, so clients know a Bearer token is expected."""
    error = "invalid_request" if code == "missing_token" else "invalid_token"
    return GatewayError(401, code, message, {"WWW-Authenticate": f'Bearer error="{error}"'})


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified token."""

    user: str
    tenant: str
    plan: str


@dataclass(frozen=True)
class TokenKeys:
    """The keys the gateway verifies with; an empty key disables its algorithm."""

    hs256_secret: str = ""
    rs256_public_key: str = ""

    def for_algorithm(self, alg: str) -> str:
        key = {"HS256": self.hs256_secret, "RS256": self.rs256_public_key}.get(alg, "")
        if not key:
            accepted = [a for a, k in (("HS256", self.hs256_secret), ("RS256", self.rs256_public_key)) if k]
            raise unauthorized(
                "unsupported_algorithm", f"Tokens must be signed with {' or '.join(accepted)}."
            )
        return key


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; 401 when missing or another scheme."""
    if not authorization:
        raise unauthorized("missing_token", "An 'Authorization: Bearer <token>' header is required.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("malformed_token", "The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def verify_token(token: str, keys: TokenKeys, plans: Iterable[str]) -> Principal:
    """The caller of a valid token; ``GatewayError`` 401 for a bad token, 403 for an unknown plan."""
    try:
        alg = jwt.get_unverified_header(token).get("alg", "")
    except jwt.DecodeError as exc:
        raise unauthorized("malformed_token", "The bearer token is not a well-formed JWT.") from exc
    key = keys.for_algorithm(str(alg))
    try:
        claims = jwt.decode(
            token, key, algorithms=[alg], leeway=LEEWAY_S, options={"require": list(REQUIRED_CLAIMS)}
        )
    except jwt.ExpiredSignatureError as exc:
        raise unauthorized("token_expired", "The bearer token has expired.") from exc
    except jwt.InvalidSignatureError as exc:
        raise unauthorized("invalid_signature", "The bearer token's signature is not valid.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise unauthorized("missing_claim", f"The bearer token has no '{exc.claim}' claim.") from exc
    except jwt.DecodeError as exc:
        raise unauthorized("malformed_token", "The bearer token is not a well-formed JWT.") from exc
    except jwt.InvalidTokenError as exc:  # bad sub/iat/nbf types, not yet valid, ...
        raise unauthorized("invalid_token", f"The bearer token is not valid: {exc}.") from exc

    user, tenant, plan = claims["sub"], claims["tenant"], claims["plan"]
    if not isinstance(user, str) or not ID_PATTERN.match(user):
        raise unauthorized("invalid_claim", "The token's 'sub' is not a valid user id.")
    if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
        raise unauthorized("invalid_claim", "The token's 'tenant' must be 1-64 of a-z, 0-9, '_' or '-'.")
    if not isinstance(plan, str) or plan not in set(plans):
        raise GatewayError(403, "unknown_plan", f"The token's plan {str(plan)[:40]!r} is not a known plan.")
    return Principal(user=user, tenant=tenant, plan=plan)


def mint_token(
    secret: str, *, tenant: str, user: str, plan: str, ttl_s: int = 3600, now: float | None = None
) -> str:
    """An HS256 token for ``user`` of ``tenant`` on ``plan``, valid for ``ttl_s`` seconds.

    For development and the local demo: production tokens come from the identity provider. Raises
    ``ValueError`` with a one-line reason for bad input.
    """
    if not TENANT_PATTERN.match(tenant):
        raise ValueError(f"invalid tenant {tenant!r}: 1-64 of a-z, 0-9, '_' or '-'")
    if not ID_PATTERN.match(user):
        raise ValueError(f"invalid user {user!r}: 1-128 of letters, digits, '_', '.', '@' or '-'")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"invalid ttl {ttl_s}: between 1 and {MAX_TTL_S} seconds")
    issued = int(time.time() if now is None else now)
    claims = {"sub": user, "tenant": tenant, "plan": plan, "iat": issued, "exp": issued + ttl_s}
    return jwt.encode(claims, secret, algorithm="HS256")
