"""API keys (app/gateway/keys.py): issued per tenant, stored only as a keyed hash, revocable, and what the
gateway's authenticator makes of them. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest
import sqlalchemy as sa

from app.data.db import get_engine, upgrade
from app.data.schema import api_keys
from app.gateway.auth import Authenticator, GatewayError, Principal, TokenKeys
from app.gateway.keys import KEY_PATTERN, ApiKeyError, ApiKeyNotFound, ApiKeyStore, key_id_of
from tests.app.gateway.conftest import SECRET

HASH_SECRET = "api-key-hash-secret-0123456789-abcdefgh"
PLANS = ("free", "pro", "enterprise")


@pytest.fixture
def store(db_url: str) -> ApiKeyStore:
    upgrade(db_url)
    return ApiKeyStore(get_engine(db_url), HASH_SECRET)


def stored_rows(store: ApiKeyStore) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(api_keys).order_by(api_keys.c.id)).mappings()]


def authenticate(authenticator: Authenticator, headers: dict[str, str]) -> Principal:
    """The authenticator reads Starlette's case-insensitive headers; these tests pass lower-case names."""
    return asyncio.run(authenticator.authenticate({k.lower(): v for k, v in headers.items()}))


def test_an_issued_key_is_shown_once_and_only_its_keyed_hash_is_stored(store):
    issued = store.issue("acme", "billing-backend", "Billing  backend", "enterprise")

    assert KEY_PATTERN.match(issued.key) and key_id_of(issued.key) == issued.record.key_id
    (row,) = stored_rows(store)
    assert (row["tenant_id"], row["user_id"], row["name"], row["plan"]) == (
        "acme",
        "billing-backend",
        "Billing backend",
        "enterprise",
    )
    assert row["revoked_at"] is None and row["created_at"] is not None
    # the key is nowhere in the row: only HMAC-SHA256 under the deployment's secret
    assert all(issued.key not in str(value) for value in row.values())
    secret_part = KEY_PATTERN.match(issued.key)["secret"]
    assert all(secret_part not in str(value) for value in row.values())
    assert row["key_hash"] == hmac.new(HASH_SECRET.encode(), issued.key.encode(), hashlib.sha256).hexdigest()
    assert row["key_hash"] != hashlib.sha256(issued.key.encode()).hexdigest()  # keyed, not a plain digest


def test_find_returns_the_key_of_a_valid_key_and_nothing_for_anything_else(store):
    issued = store.issue("acme", "billing", "Billing", "pro")
    found = store.find(issued.key)
    assert found is not None and (found.tenant_id, found.user_id, found.plan) == ("acme", "billing", "pro")

    key_id = issued.record.key_id
    tampered = issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")
    for wrong in (tampered, f"sbk_{key_id}_{'x' * 43}", issued.key + "x", "", "Bearer " + issued.key, "sbk_"):
        assert store.find(wrong) is None, wrong
    # another deployment's secret (or a rotated one) does not recognise the key
    assert ApiKeyStore(store.engine, "another-secret-of-at-least-32-bytes!!").find(issued.key) is None


def test_a_revoked_key_is_found_as_revoked_and_revoking_again_changes_nothing(store):
    issued = store.issue("acme", "billing", "Billing", "pro")
    record, changed = store.revoke("acme", issued.record.key_id)
    assert changed and record.revoked
    again, changed_again = store.revoke("acme", issued.record.key_id)
    assert not changed_again and again.revoked_at == record.revoked_at
    assert store.find(issued.key).revoked


def test_one_tenant_can_neither_list_nor_revoke_another_tenants_keys(store):
    acme = store.issue("acme", "billing", "Acme billing", "pro")
    globex = store.issue("globex", "billing", "Globex billing", "pro")  # the same client id, another tenant

    assert [k.key_id for k in store.of_tenant("acme")] == [acme.record.key_id]
    assert [k.key_id for k in store.of_tenant("globex")] == [globex.record.key_id]
    with pytest.raises(ApiKeyNotFound, match="no API key"):
        store.revoke("acme", globex.record.key_id)
    assert not store.find(globex.key).revoked
    assert store.find(globex.key).tenant_id == "globex"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Acme!", "billing", "n"), "invalid tenant"),
        (("acme", "bill ing", "n"), "invalid client"),
        (("acme", "billing", "   "), "invalid name"),
        (("acme", "billing", "x" * 201), "invalid name"),
        (("acme", "billing", "tab\tbell\x07"), "invalid name"),
    ],
)
def test_issue_refuses_bad_input(sqlite_url, args, message):
    upgrade(sqlite_url)
    with pytest.raises(ApiKeyError, match=message):
        ApiKeyStore(get_engine(sqlite_url), HASH_SECRET).issue(*args, "pro")


@pytest.mark.parametrize("secret", ["", "short"])
def test_issuing_needs_a_long_enough_hash_secret(sqlite_url, secret):
    upgrade(sqlite_url)
    with pytest.raises(ApiKeyError, match="SWITCHBOARD_API_KEY_SECRET"):
        ApiKeyStore(get_engine(sqlite_url), secret).issue("acme", "billing", "Billing", "pro")


# --- the authenticator ----------------------------------------------------------------------------------


def test_an_api_key_authenticates_as_its_tenant_client_and_plan(store):
    issued = store.issue("globex", "crm-sync", "CRM sync", "enterprise")
    authenticator = Authenticator(TokenKeys(SECRET), PLANS, api_keys=store)
    principal = authenticate(authenticator, {"X-Api-Key": issued.key, "X-Tenant-Id": "acme"})
    assert principal == Principal("", "globex", "enterprise", key_id=issued.record.key_id, client="crm-sync")


@pytest.mark.parametrize(
    ("make_headers", "status", "code"),
    [
        (lambda key: {"X-Api-Key": key[:-2] + "zz"}, 401, "invalid_api_key"),
        (lambda key: {"X-Api-Key": "not-a-key"}, 401, "invalid_api_key"),
        (lambda key: {"X-Api-Key": ""}, 401, "invalid_api_key"),
        (lambda key: {"X-Api-Key": key, "Authorization": "Bearer x.y.z"}, 400, "ambiguous_credentials"),
    ],
)
def test_bad_api_keys_are_refused(store, make_headers, status, code):
    issued = store.issue("acme", "billing", "Billing", "pro")
    with pytest.raises(GatewayError) as raised:
        authenticate(Authenticator(TokenKeys(SECRET), PLANS, api_keys=store), make_headers(issued.key))
    assert (raised.value.status, raised.value.code) == (status, code)
    assert issued.key not in raised.value.message


def test_a_revoked_key_is_refused_from_the_next_request(store):
    issued = store.issue("acme", "billing", "Billing", "pro")
    authenticator = Authenticator(TokenKeys(SECRET), PLANS, api_keys=store)
    assert authenticate(authenticator, {"X-Api-Key": issued.key}).tenant == "acme"
    store.revoke("acme", issued.record.key_id)
    with pytest.raises(GatewayError) as raised:
        authenticate(authenticator, {"X-Api-Key": issued.key})
    assert (raised.value.status, raised.value.code) == (401, "api_key_revoked")
    assert raised.value.headers["WWW-Authenticate"] == 'ApiKey header="X-Api-Key"'


def test_a_key_on_a_plan_the_gateway_no_longer_has_is_forbidden(store):
    issued = store.issue("acme", "billing", "Billing", "platinum")
    with pytest.raises(GatewayError) as raised:
        authenticate(Authenticator(TokenKeys(SECRET), PLANS, api_keys=store), {"X-Api-Key": issued.key})
    assert (raised.value.status, raised.value.code) == (403, "unknown_plan")


def test_without_a_key_store_api_keys_are_refused(store):
    issued = store.issue("acme", "billing", "Billing", "pro")
    with pytest.raises(GatewayError) as raised:
        authenticate(Authenticator(TokenKeys(SECRET), PLANS), {"X-Api-Key": issued.key})
    assert (raised.value.status, raised.value.code) == (401, "api_keys_disabled")


def test_an_unreadable_key_store_fails_closed_with_503(tmp_path):
    broken = ApiKeyStore(get_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}"), HASH_SECRET)  # no table
    key = f"sbk_{'a' * 12}_{'b' * 43}"
    with pytest.raises(GatewayError) as raised:
        authenticate(Authenticator(TokenKeys(SECRET), PLANS, api_keys=broken), {"X-Api-Key": key})
    assert (raised.value.status, raised.value.code) == (503, "auth_unavailable")
    assert raised.value.headers["Retry-After"] == "5"
