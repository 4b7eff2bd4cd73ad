"""Token verification and minting (PyJWT): HS256, optional RS256, and the algorithm-confusion guard."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.gateway.auth import GatewayError, Principal, TokenKeys, bearer_token, mint_token, verify_token
from tests.app.gateway.conftest import SECRET, make_token

PLANS = ("free", "pro", "enterprise")


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh 2048-bit key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_minted_token_verifies_to_its_principal():
    token = mint_token(SECRET, tenant="acme", user="alice@example.com", plan="pro", ttl_s=60)
    assert verify_token(token, TokenKeys(SECRET), PLANS) == Principal("alice@example.com", "acme", "pro")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 60


def test_small_clock_skew_is_tolerated_but_not_more():
    just_expired = make_token(exp=int(time.time()) - 2)
    assert verify_token(just_expired, TokenKeys(SECRET), PLANS).user == "alice"
    with pytest.raises(GatewayError) as raised:
        verify_token(make_token(exp=int(time.time()) - 30), TokenKeys(SECRET), PLANS)
    assert (raised.value.status, raised.value.code) == (401, "token_expired")


def test_rs256_tokens_verify_with_the_public_key(rsa_keys):
    private, public = rsa_keys
    token = jwt.encode(
        {"sub": "bob", "tenant": "globex", "plan": "free", "exp": int(time.time()) + 60},
        private,
        algorithm="RS256",
    )
    assert verify_token(token, TokenKeys(SECRET, public), PLANS) == Principal("bob", "globex", "free")
    with pytest.raises(GatewayError) as raised:  # no public key configured: RS256 is refused
        verify_token(token, TokenKeys(SECRET), PLANS)
    assert raised.value.code == "unsupported_algorithm"


def _hs256_signed_with(key: bytes, claims: dict) -> str:
    """An HS256 token built by hand (PyJWT refuses to use a PEM key as an HMAC secret)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_algorithm_confusion_public_key_as_hmac_secret_is_refused(rsa_keys):
    """An attacker who knows the public key signs HS256 with it; the gateway checks HS256 with its secret."""
    _, public = rsa_keys
    claims = {"sub": "mallory", "tenant": "acme", "plan": "enterprise", "exp": int(time.time()) + 60}
    forged = _hs256_signed_with(public.encode(), claims)
    with pytest.raises(GatewayError) as raised:
        verify_token(forged, TokenKeys(SECRET, public), PLANS)
    assert (raised.value.status, raised.value.code) == (401, "invalid_signature")
    with pytest.raises(GatewayError) as raised:  # RS256-only gateway: HS256 is not even tried
        verify_token(forged, TokenKeys("", public), PLANS)
    assert raised.value.code == "unsupported_algorithm"


def test_unsigned_tokens_are_refused():
    unsigned = jwt.encode(
        {"sub": "alice", "tenant": "acme", "plan": "pro", "exp": int(time.time()) + 60},
        None,
        algorithm="none",
    )
    with pytest.raises(GatewayError) as raised:
        verify_token(unsigned, TokenKeys(SECRET), PLANS)
    assert (raised.value.status, raised.value.code) == (401, "unsupported_algorithm")


@pytest.mark.parametrize("claim", ["sub", "tenant", "plan", "exp"])
def test_every_required_claim_is_required(claim):
    with pytest.raises(GatewayError) as raised:
        verify_token(make_token(drop=(claim,)), TokenKeys(SECRET), PLANS)
    assert (raised.value.status, raised.value.code) == (401, "missing_claim")
    assert claim in raised.value.message


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Token abc"])
def test_bearer_header_must_be_present_and_well_formed(header):
    with pytest.raises(GatewayError) as raised:
        bearer_token(header)
    assert raised.value.status == 401
    assert raised.value.code == ("missing_token" if not header else "malformed_token")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"tenant": "Acme Corp"}, "invalid tenant"),
        ({"user": "bad user"}, "invalid user"),
        ({"ttl_s": 0}, "invalid ttl"),
        ({"ttl_s": 10**9}, "invalid ttl"),
    ],
)
def test_mint_token_refuses_bad_input(kwargs, reason):
    args = {"tenant": "acme", "user": "alice", "plan": "pro", "ttl_s": 60, **kwargs}
    with pytest.raises(ValueError, match=reason):
        mint_token(SECRET, **args)


# --- not yet valid, audience and issuer -------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_token_from_the_future_is_refused_beyond_the_leeway(claim):
    now = int(time.time())
    assert verify_token(make_token(**{claim: now + 2}), TokenKeys(SECRET), PLANS).user == "alice"
    with pytest.raises(GatewayError) as raised:
        verify_token(make_token(**{claim: now + 120}), TokenKeys(SECRET), PLANS)
    assert (raised.value.status, raised.value.code) == (401, "token_not_yet_valid")
    assert raised.value.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    ("rule", "claim", "expected", "accepted", "wrong", "code"),
    [
        ("audience", "aud", "switchboard-gateway", ["crm", "switchboard-gateway"], "billing",
         "invalid_audience"),
        ("issuer", "iss", "https://idp.example.com/", "https://idp.example.com/", "https://evil.example.com/",
         "invalid_issuer"),
    ],
)  # fmt: skip
def test_a_configured_audience_or_issuer_is_required_and_must_match(
    rule, claim, expected, accepted, wrong, code
):
    keys, rules = TokenKeys(SECRET), {rule: expected}
    assert verify_token(make_token(**{claim: expected}), keys, PLANS, **rules).user == "alice"
    assert verify_token(make_token(**{claim: accepted}), keys, PLANS, **rules).user == "alice"
    for token, refusal in ((make_token(**{claim: wrong}), code), (make_token(), "missing_claim")):
        with pytest.raises(GatewayError) as raised:
            verify_token(token, keys, PLANS, **rules)
        assert (raised.value.status, raised.value.code) == (401, refusal)


def test_without_a_configured_audience_a_token_meant_for_some_service_is_refused():
    with pytest.raises(GatewayError) as raised:
        verify_token(make_token(aud="billing-api"), TokenKeys(SECRET), PLANS)
    assert (raised.value.status, raised.value.code) == (401, "invalid_audience")


def test_minted_tokens_carry_the_configured_audience_and_issuer():
    token = mint_token(
        SECRET, tenant="acme", user="alice", plan="pro", audience="gw", issuer="switchboard-dev"
    )
    rules = {"audience": "gw", "issuer": "switchboard-dev"}
    assert verify_token(token, TokenKeys(SECRET), PLANS, **rules) == Principal("alice", "acme", "pro")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="gw")
    assert (claims["aud"], claims["iss"]) == ("gw", "switchboard-dev")
    assert "aud" not in jwt.decode(mint_token(SECRET, tenant="acme", user="a", plan="pro"), SECRET, ["HS256"])


def test_an_api_key_only_gateway_says_so_to_a_bearer_token():
    with pytest.raises(GatewayError) as raised:
        verify_token(make_token(), TokenKeys(), PLANS)
    assert (raised.value.code, raised.value.message) == (
        "unsupported_algorithm",
        "This gateway accepts API keys only.",
    )


# --- principals ------------------------------------------------------------------------------------------


def test_a_token_speaks_only_for_its_user_and_an_api_key_for_any_user_of_its_tenant():
    token_caller = Principal("alice", "acme", "pro")
    assert token_caller.speaking_as("alice") is token_caller
    assert token_caller.rate_subject == "alice"
    with pytest.raises(GatewayError) as raised:
        token_caller.speaking_as("bob")
    assert (raised.value.status, raised.value.code) == (403, "sender_mismatch")

    key_caller = Principal("", "acme", "enterprise", key_id="0123456789ab", client="billing")
    turn = key_caller.speaking_as("bob")
    assert (turn.user, turn.tenant, turn.plan, turn.client) == ("bob", "acme", "enterprise", "billing")
    # the budget is the client's, whoever it speaks for, and never a user's
    assert turn.rate_subject == key_caller.speaking_as("carol").rate_subject == "client:billing"
