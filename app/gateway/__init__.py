"""The gateway in front of the Rasa REST channel: JWT authentication and per-plan rate limits.

End users (and the chat page) post to the gateway's ``POST /webhooks/rest/webhook`` with the REST channel's
contract plus ``Authorization: Bearer <JWT>``. The gateway verifies the token, takes tenant and user from it
(a client can no longer claim another tenant with ``X-Tenant-Id``), counts the turn against the plan's limit
and the tenant's ceiling, and forwards it to one of the Rasa servers. See docs/gateway.md.

``python -m app.gateway serve`` runs it; ``python -m app.gateway token ...`` mints a development token.
"""
