"""Who a request is from: an end user's bearer token (JWT, PyJWT) or a server-to-server client's API key.

A token names the user (``sub``), the tenant (``tenant``) and the plan (``plan``) and expires (``exp``); all
four are required. HS256 tokens are checked with ``SWITCHBOARD_JWT_SECRET``; RS256 tokens with the public key
when one is configured (an identity provider signs, the gateway only verifies). The algorithm is taken from
the token's header only to pick the key of that type: a token can never make the gateway use the public key
as an HMAC secret (the classic algorithm-confusion attack), because each algorithm has its own key and PyJWT
is told to accept that one algorithm alone. A token is refused before its ``nbf`` or ``iat`` (beyond
:data:`LEEWAY_S` of clock skew), and, when ``SWITCHBOARD_JWT_AUDIENCE`` / ``SWITCHBOARD_JWT_ISSUER`` are set,
unless its ``aud`` / ``iss`` match them.

An API key (header ``X-Api-Key``, :mod:`app.gateway.keys`) names the tenant, the client and the plan; the
client names the end user of each turn in the body's ``sender``. The key's tenant is authoritative: no header
can change it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import jwt
import structlog
from sqlalchemy.exc import SQLAlchemyError

from app.channels.turns import ID_PATTERN, TENANT_PATTERN
from app.gateway.keys import ApiKeyStore

# The same patterns as the REST channel (app/channels/rest.py, which the main env cannot import).
REQUIRED_CLAIMS = ("sub", "tenant", "plan", "exp")
MAX_TTL_S = 30 * 24 * 3600  # dev tokens live at most 30 days
LEEWAY_S = 5  # clock skew between the token's issuer and the gateway
API_KEY_HEADER = "X-Api-Key"

logger = structlog.get_logger(__name__)


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


def key_refused(code: str, message: str) -> GatewayError:
    """A 401 for an API key, with a challenge naming the header a key goes in."""
    return GatewayError(401, code, message, {"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'})


@dataclass(frozen=True)
class Principal:
    """Who is calling. From a token: ``user`` is its ``sub``. From an API key: ``key_id`` and ``client`` are
    the key's, and ``user`` is the end user the client names in the body's ``sender`` (empty until
    :meth:`speaking_as`)."""

    user: str
    tenant: str
    plan: str
    key_id: str = ""
    client: str = ""

    @property
    def rate_subject(self) -> str:
        """Whose plan budget a turn counts against: the token's user, or the key's client (a ``:`` cannot
        occur in a user id, so a client never shares a user's budget)."""
        return f"client:{self.client}" if self.key_id else self.user

    def speaking_as(self, sender: str) -> Principal:
        """The principal of a turn sent as ``sender``: a token speaks only for its own user (403 otherwise),
        an API key for any end user of its tenant."""
        if self.key_id:
            return replace(self, user=sender)
        if sender != self.user:
            raise GatewayError(403, "sender_mismatch", "'sender' must be the token's user ('sub').")
        return self


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
                "unsupported_algorithm",
                f"Tokens must be signed with {' or '.join(accepted)}."
                if accepted
                else "This gateway accepts API keys only.",
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


def verify_token(
    token: str, keys: TokenKeys, plans: Iterable[str], *, audience: str = "", issuer: str = ""
) -> Principal:
    """The caller of a valid token; ``GatewayError`` 401 for a bad token, 403 for an unknown plan.

    With ``audience`` (``issuer``) set, the token must carry that ``aud`` (``iss``). Without an audience, a
    token that names one is refused (PyJWT's rule: a token meant for a given service is not accepted by a
    service that does not know it is that one)."""
    try:
        alg = jwt.get_unverified_header(token).get("alg", "")
    except jwt.DecodeError as exc:
        raise unauthorized("malformed_token", "The bearer token is not a well-formed JWT.") from exc
    key = keys.for_algorithm(str(alg))
    required = [*REQUIRED_CLAIMS, *(["aud"] if audience else []), *(["iss"] if issuer else [])]
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            leeway=LEEWAY_S,
            audience=audience or None,
            issuer=issuer or None,
            options={"require": required},
        )
    except jwt.ExpiredSignatureError as exc:
        raise unauthorized("token_expired", "The bearer token has expired.") from exc
    except jwt.ImmatureSignatureError as exc:  # nbf, or iat, after now + leeway
        raise unauthorized("token_not_yet_valid", "The bearer token is not valid yet (nbf/iat).") from exc
    except jwt.InvalidAudienceError as exc:
        raise unauthorized(
            "invalid_audience", "The bearer token is not meant for this gateway (aud)."
        ) from exc
    except jwt.InvalidIssuerError as exc:
        raise unauthorized("invalid_issuer", "The bearer token's issuer (iss) is not trusted.") from exc
    except jwt.InvalidSignatureError as exc:
        raise unauthorized("invalid_signature", "The bearer token's signature is not valid.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise unauthorized("missing_claim", f"The bearer token has no '{exc.claim}' claim.") from exc
    except jwt.DecodeError as exc:
        raise unauthorized("malformed_token", "The bearer token is not a well-formed JWT.") from exc
    except jwt.InvalidTokenError as exc:  # bad sub/iat types, ...
        raise unauthorized("invalid_token", f"The bearer token is not valid: {exc}.") from exc

    user, tenant, plan = claims["sub"], claims["tenant"], claims["plan"]
    if not isinstance(user, str) or not ID_PATTERN.match(user):
        raise unauthorized("invalid_claim", "The token's 'sub' is not a valid user id.")
    if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
        raise unauthorized("invalid_claim", "The token's 'tenant' must be 1-64 of a-z, 0-9, '_' or '-'.")
    if not isinstance(plan, str) or plan not in set(plans):
        raise GatewayError(403, "unknown_plan", f"The token's plan {str(plan)[:40]!r} is not a known plan.")
    return Principal(user=user, tenant=tenant, plan=plan)


class Authenticator:
    """Checks a request's credentials: ``Authorization: Bearer <token>`` or ``X-Api-Key`` (not both)."""

    def __init__(
        self,
        keys: TokenKeys,
        plans: Iterable[str],
        *,
        audience: str = "",
        issuer: str = "",
        api_keys: ApiKeyStore | None = None,
    ) -> None:
        self.keys, self.plans = keys, tuple(plans)
        self.audience, self.issuer = audience, issuer
        self.api_keys = api_keys

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller; ``GatewayError`` (400 both credentials, 401 bad ones, 403 unknown plan, 503 key store
        down). ``headers``: Starlette's (case-insensitive) or a mapping of lower-case names."""
        authorization, api_key = headers.get("authorization"), headers.get(API_KEY_HEADER.lower())
        if authorization and api_key is not None:
            raise GatewayError(
                400, "ambiguous_credentials", f"Send a bearer token or an {API_KEY_HEADER} header, not both."
            )
        if api_key is not None:
            return await self.verify_api_key(api_key.strip())
        return verify_token(
            bearer_token(authorization), self.keys, self.plans, audience=self.audience, issuer=self.issuer
        )

    async def verify_api_key(self, key: str) -> Principal:
        """The tenant, client and plan of a valid, unrevoked key (read from the store on every request, so a
        revocation applies at once)."""
        if self.api_keys is None:
            raise key_refused("api_keys_disabled", "This gateway does not accept API keys.")
        try:
            found = await asyncio.to_thread(self.api_keys.find, key)
        except SQLAlchemyError as exc:  # fail closed; the message's first line holds no key and no SQL
            logger.error("gateway.api_keys.unavailable", error=str(exc).splitlines()[0][:200])
            raise GatewayError(
                503,
                "auth_unavailable",
                "API keys cannot be checked right now; retry later.",
                {"Retry-After": "5"},
            ) from exc
        if found is None:
            raise key_refused("invalid_api_key", "The API key is not valid.")
        if found.revoked:
            raise key_refused("api_key_revoked", "The API key has been revoked.")
        if found.plan not in self.plans:
            raise GatewayError(
                403, "unknown_plan", f"The API key's plan {found.plan[:40]!r} is not a known plan."
            )
        return Principal(
            user="", tenant=found.tenant_id, plan=found.plan, key_id=found.key_id, client=found.user_id
        )


def mint_token(
    secret: str,
    *,
    tenant: str,
    user: str,
    plan: str,
    ttl_s: int = 3600,
    now: float | None = None,
    audience: str = "",
    issuer: str = "",
) -> str:
    """An HS256 token for ``user`` of ``tenant`` on ``plan``, valid for ``ttl_s`` seconds, with ``aud`` and
    ``iss`` when given (a gateway that checks them needs them).

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
    claims |= {"aud": audience} if audience else {}
    claims |= {"iss": issuer} if issuer else {}
    return jwt.encode(claims, secret, algorithm="HS256")
