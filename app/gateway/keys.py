"""API keys for server-to-server clients: issued per tenant, stored only as a keyed hash, revocable.

A key is ``sbk_<key id>_<secret>``: the key id (12 hex digits) is public (it is listed, logged and used to
revoke the key), the secret is 32 random bytes (URL-safe base64). Only
``HMAC-SHA256(SWITCHBOARD_API_KEY_SECRET, key)`` is stored, so the key is shown once, when it is issued, and a
copy of the database alone can neither recover a key nor confirm a guessed one. A keyed hash rather than a
slow one: the keys are random (256 bits), so slowness adds nothing against guessing, and a constant
microsecond per request cannot be turned into a CPU exhaustion attack by a client sending wrong keys (a slow
hash costs tens of milliseconds each). Changing ``SWITCHBOARD_API_KEY_SECRET`` invalidates every key: issue
new ones.

Each key belongs to one tenant and one client (``user_id``) and has a plan (the gateway's rate limits). Its
tenant is authoritative: a request with a key is always that tenant's, whatever its headers say.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from app.channels.turns import ID_PATTERN, TENANT_PATTERN
from app.data.schema import api_keys

KEY_PATTERN = re.compile(r"^sbk_(?P<key_id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
MIN_HASH_SECRET_BYTES = 32
MAX_NAME_CHARS = 200


class ApiKeyError(ValueError):
    """Bad input for issuing or revoking a key; the message is one line for the caller."""


class ApiKeyNotFound(LookupError):
    """No key with this id in this tenant."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, as listed: everything but the key itself (which is never stored)."""

    key_id: str
    tenant_id: str
    user_id: str  # the client's id
    name: str
    plan: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class IssuedKey:
    """A new key: ``key`` is the only copy there will ever be."""

    key: str
    record: ApiKey


def key_id_of(key: str) -> str:
    """The public id of a well-formed key (safe to log), else an empty string."""
    match = KEY_PATTERN.match(key)
    return match["key_id"] if match else ""


def key_hash(hash_secret: str, key: str) -> str:
    """What is stored of ``key``: HMAC-SHA256 under the deployment's key-hash secret, hex."""
    return hmac.new(hash_secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def check_hash_secret(hash_secret: str) -> str:
    """``hash_secret`` when it is long enough to key the hash, else ``ApiKeyError``."""
    if len(hash_secret.encode()) < MIN_HASH_SECRET_BYTES:
        raise ApiKeyError(
            f"SWITCHBOARD_API_KEY_SECRET must be set to at least {MIN_HASH_SECRET_BYTES} bytes"
            + (" (it is too short)" if hash_secret else "")
        )
    return hash_secret


def _utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; ours are all UTC."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: sa.RowMapping) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        name=row["name"],
        plan=row["plan"],
        created_at=_utc(row["created_at"]),  # type: ignore[arg-type]
        revoked_at=_utc(row["revoked_at"]),
    )


class ApiKeyStore:
    """The ``api_keys`` table. ``hash_secret`` is needed to issue and to find keys, not to list or revoke."""

    def __init__(self, engine: sa.Engine, hash_secret: str = "") -> None:
        self.engine = engine
        self.hash_secret = hash_secret

    def issue(self, tenant_id: str, client_id: str, name: str, plan: str) -> IssuedKey:
        """A new key for ``client_id`` of ``tenant_id`` on ``plan``; ``ApiKeyError`` for bad input. The plan
        is not checked here (the caller knows the gateway's plans)."""
        secret = check_hash_secret(self.hash_secret)
        if not TENANT_PATTERN.match(tenant_id):
            raise ApiKeyError(f"invalid tenant {tenant_id!r}: 1-64 of a-z, 0-9, '_' or '-'")
        if not ID_PATTERN.match(client_id):
            raise ApiKeyError(f"invalid client {client_id!r}: 1-128 of letters, digits, '_', '.', '@' or '-'")
        name = " ".join(name.split())
        if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
            raise ApiKeyError(f"invalid name: 1-{MAX_NAME_CHARS} printable characters")
        key_id = secrets.token_hex(6)
        key = f"sbk_{key_id}_{secrets.token_urlsafe(32)}"
        values = {
            "key_id": key_id,
            "tenant_id": tenant_id,
            "user_id": client_id,
            "name": name,
            "plan": plan,
            "key_hash": key_hash(secret, key),
            "created_at": datetime.now(UTC),
            "revoked_at": None,
        }
        with self.engine.begin() as conn:
            conn.execute(sa.insert(api_keys).values(**values))
        return IssuedKey(key, _record(values))  # type: ignore[arg-type]

    def of_tenant(self, tenant_id: str) -> list[ApiKey]:
        """The tenant's keys, revoked ones included, oldest first."""
        query = sa.select(api_keys).where(api_keys.c.tenant_id == tenant_id).order_by(api_keys.c.id)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).mappings()]

    def revoke(self, tenant_id: str, key_id: str) -> tuple[ApiKey, bool]:
        """Revoke the tenant's key ``key_id`` (at once: the gateway reads the row on every request); returns
        the key and whether this call revoked it (False: it already was). ``ApiKeyNotFound`` when the tenant
        has no such key: one tenant can never revoke another's."""
        mine = sa.and_(api_keys.c.tenant_id == tenant_id, api_keys.c.key_id == key_id)
        with self.engine.begin() as conn:
            changed = conn.execute(
                sa.update(api_keys)
                .where(mine, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            ).rowcount
            row = conn.execute(sa.select(api_keys).where(mine)).mappings().first()
        if row is None:
            raise ApiKeyNotFound(f"no API key {key_id!r} in tenant {tenant_id!r}")
        return _record(row), bool(changed)

    def find(self, key: str) -> ApiKey | None:
        """The stored key ``key`` is (revoked or not), or None for a malformed or unknown key. Raises
        ``sqlalchemy.exc.SQLAlchemyError`` when the store cannot be read."""
        match = KEY_PATTERN.match(key)
        if match is None or not self.hash_secret:
            return None
        digest = key_hash(self.hash_secret, key)
        query = sa.select(api_keys).where(api_keys.c.key_hash == digest)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        # the key id must match too; compare_digest keeps the final check constant-time
        if (
            row is None
            or row["key_id"] != match["key_id"]
            or not hmac.compare_digest(row["key_hash"], digest)
        ):
            return None
        return _record(row)
