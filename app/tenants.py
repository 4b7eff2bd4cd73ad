"""What the bot says about each tenant's business: its name and where its customers write when the chat
cannot help (the handoff failure message, the agent page's hand-back notice).

The help articles (``knowledge/docs``) are the source: Northwind Goods' contact page names
support@northwind.example, Globex Energy's help@globex.example. A tenant without a profile gets neutral
wording, never another tenant's name. The greetings and other canned replies have their tenant variations
in ``nlu/domain.yml`` (responses conditioned on the ``tenant`` slot).
"""

from __future__ import annotations

from typing import NamedTuple


class TenantProfile(NamedTuple):
    name: str  # "Northwind Goods"
    support_email: str | None


PROFILES: dict[str, TenantProfile] = {
    "acme": TenantProfile("Northwind Goods", "support@northwind.example"),
    "globex": TenantProfile("Globex Energy", "help@globex.example"),
}
NEUTRAL = TenantProfile("", None)


def profile(tenant_id: str) -> TenantProfile:
    """The tenant's profile, or neutral wording for a tenant without one."""
    return PROFILES.get(tenant_id, NEUTRAL)


def assistant_name(tenant_id: str) -> str:
    """ "the Northwind Goods assistant", or "the assistant" for a tenant without a profile."""
    name = profile(tenant_id).name
    return f"the {name} assistant" if name else "the assistant"
