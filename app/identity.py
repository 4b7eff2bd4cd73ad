"""Who a conversation belongs to: the ``<tenant>:<user>`` conversation id and the id formats, in one place.

The REST channel (app/channels/rest.py) keys every Rasa tracker by ``<tenant>:<user>``, so each tracker row
carries both ids; the actions, the analytics and retention read them back with :func:`parse_conversation_id`.

Rules:

- A tenant id matches :data:`TENANT_PATTERN` (1-64 of a-z, 0-9, ``_``, ``-``; no ``:``). A user id sent to
  the REST channel matches :data:`ID_PATTERN` (1-128 of letters, digits, ``_``, ``.``, ``@``, ``-``).
- :func:`conversation_id` refuses an invalid tenant or an empty user id (``ValueError``): its output must
  parse back to the same pair.
- :func:`parse_conversation_id` splits at the *first* ``:``. A tenant id has no ``:``, so a user id that
  contains one (possible outside the REST channel) round-trips: ``acme:a:b`` is tenant ``acme``, user
  ``a:b``.
- An id without a ``:`` (or with nothing after it) comes from a channel without tenancy and belongs to the
  default tenant, the whole id being the user id. So a *bare* id with a ``:`` inside can never stand for a
  default-tenant user: ``globex:alice`` is always tenant ``globex``.
- Parsing never refuses: a stored id is reported as written, even when its tenant part is not a valid tenant
  id (only ids the REST channel made are guaranteed valid).

Standard library only: the Rasa server (Python 3.10, pydantic 1) imports it through the REST channel.
"""

from __future__ import annotations

import re

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SEPARATOR = ":"


def conversation_id(tenant: str, user: str) -> str:
    """The tracker key of ``user`` in ``tenant``: both ids together, so no two tenants share a conversation."""
    if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
        raise ValueError(f"invalid tenant id {tenant!r}: 1-64 of a-z, 0-9, '_' or '-', starting alphanumeric")
    if not isinstance(user, str) or not user:
        raise ValueError("a conversation needs a non-empty user id")
    return f"{tenant}{SEPARATOR}{user}"


def parse_conversation_id(conversation: str, default_tenant: str) -> tuple[str, str]:
    """``<tenant>:<user>`` -> ``(tenant, user)``; an id without a tenant belongs to ``default_tenant``."""
    tenant, sep, user = str(conversation).partition(SEPARATOR)
    return (tenant, user) if sep and user else (default_tenant, str(conversation))


def conversation_ids_of(tenant: str, user: str, default_tenant: str | None) -> list[str]:
    """Every conversation id that :func:`parse_conversation_id` reads as ``(tenant, user)``: the tenant's
    id, and for the default tenant also the bare user id when it parses back to that user (no ``:``)."""
    ids = [conversation_id(tenant, user)]
    if tenant == default_tenant and parse_conversation_id(user, default_tenant) == (tenant, user):
        ids.append(user)
    return ids
