"""The conversation id (app/identity.py): one format, one parser, the default-tenant rule."""

from __future__ import annotations

import pytest

from app.identity import (
    ID_PATTERN,
    TENANT_PATTERN,
    conversation_id,
    conversation_ids_of,
    parse_conversation_id,
)


@pytest.mark.parametrize(
    ("tenant", "user"),
    [("acme", "alice"), ("globex", "bob@example.com"), ("t-1_x", "A.b-c_9"), ("acme", "a" * 128)],
)
def test_round_trip(tenant: str, user: str) -> None:
    cid = conversation_id(tenant, user)
    assert cid == f"{tenant}:{user}"
    assert parse_conversation_id(cid, default_tenant="other") == (tenant, user)


def test_an_id_without_a_tenant_belongs_to_the_default_tenant() -> None:
    assert parse_conversation_id("alice", "acme") == ("acme", "alice")
    assert parse_conversation_id("alice:", "acme") == ("acme", "alice:")  # nothing after the colon
    assert parse_conversation_id("", "acme") == ("acme", "")


def test_a_user_id_with_a_colon_splits_at_the_first_colon() -> None:
    """A tenant id never holds ':', so everything after the first one is the user id."""
    cid = conversation_id("acme", "x:y")
    assert cid == "acme:x:y"
    assert parse_conversation_id(cid, "acme") == ("acme", "x:y")
    # a bare id with a colon is always tenant-scoped: never a default-tenant user
    assert parse_conversation_id("globex:alice", "acme") == ("globex", "alice")


def test_conversation_ids_of_a_user_are_exactly_those_that_parse_back_to_them() -> None:
    assert conversation_ids_of("acme", "alice", default_tenant="acme") == ["acme:alice", "alice"]
    assert conversation_ids_of("globex", "alice", default_tenant="acme") == ["globex:alice"]
    assert conversation_ids_of("acme", "alice", default_tenant=None) == ["acme:alice"]
    # the bare "globex:alice" is globex's alice, not the default tenant's user "globex:alice"
    assert conversation_ids_of("acme", "globex:alice", default_tenant="acme") == ["acme:globex:alice"]
    for tenant, user in [("acme", "alice"), ("acme", "x:y"), ("globex", "alice")]:
        for cid in conversation_ids_of(tenant, user, "acme"):
            assert parse_conversation_id(cid, "acme") == (tenant, user)


@pytest.mark.parametrize("tenant", ["", "Acme", "acme corp", "acme:x", "-acme", "a" * 65, None])
def test_an_invalid_tenant_is_refused_when_formatting(tenant: object) -> None:
    with pytest.raises(ValueError, match="invalid tenant id"):
        conversation_id(tenant, "alice")  # type: ignore[arg-type]
    assert TENANT_PATTERN.match(tenant or "") is None


def test_an_empty_user_is_refused_when_formatting() -> None:
    with pytest.raises(ValueError, match="non-empty user id"):
        conversation_id("acme", "")


def test_parsing_reports_an_invalid_tenant_as_written() -> None:
    """Stored ids are not rejected on read (only the REST channel's are guaranteed valid)."""
    assert parse_conversation_id("Acme Corp:bob", "acme") == ("Acme Corp", "bob")


def test_the_patterns_are_the_rest_channels() -> None:
    from app.channels import turns

    assert turns.ID_PATTERN is ID_PATTERN and turns.TENANT_PATTERN is TENANT_PATTERN
    assert ID_PATTERN.match("alice@example.com") and not ID_PATTERN.match("a:b")
    assert not ID_PATTERN.match("x" * 129)
