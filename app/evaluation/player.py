"""Play conversations through the served bot, as users and agents would: over HTTP, through the gateway.

Each ``user`` or ``click`` turn is one ``POST /webhooks/rest/webhook`` on the gateway with a token of the
conversation's tenant and user and ``X-Request-Id: <run>.<conversation>.<turn>``, the correlation id the turn
records carry, so every reply can be matched with what really ran. ``agent`` and ``hand_back`` turns use the
CRM service's agent API, as the agent page does. Turns of one conversation run in order; conversations may
run concurrently (``concurrency``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.evaluation.conversations import Conversation, Turn
from app.gateway.auth import mint_token

WEBHOOK = "/webhooks/rest/webhook"


@dataclass
class PlayedTurn:
    """What one turn sent and what came back."""

    conversation: str
    number: int  # in the conversation, from 1 (agent turns count)
    kind: str  # user | click | agent | hand_back
    sent: str  # the text or button payload sent ("" for agent actions)
    request_id: str
    status: int = 0  # HTTP status (0: no answer at all)
    replies: list[dict[str, Any]] = field(default_factory=list)  # Rasa's bot messages
    elapsed_ms: float = 0.0
    error: str = ""

    @property
    def reply_text(self) -> str:
        """The bot's messages as one text (button titles included), as the user reads them."""
        parts = []
        for message in self.replies:
            if message.get("text"):
                parts.append(str(message["text"]))
            parts.extend(str(b.get("title", "")) for b in message.get("buttons") or [])
        return "\n".join(parts)

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [b for m in self.replies for b in m.get("buttons") or []]


class Player:
    """Plays conversations against one served stack."""

    def __init__(
        self,
        gateway_url: str,
        crm_url: str,
        jwt_secret: str,
        run_id: str,
        *,
        plan: str = "enterprise",
        timeout_s: float = 60.0,
        audience: str = "",
        issuer: str = "",
    ) -> None:
        """``audience`` and ``issuer``: the ``aud`` and ``iss`` the stack's gateway requires, if any."""
        self.gateway_url = gateway_url.rstrip("/")
        self.crm_url = crm_url.rstrip("/")
        self.secret = jwt_secret
        self.run_id = run_id
        self.plan = plan
        self.timeout_s = timeout_s
        self.claims = {"audience": audience, "issuer": issuer}

    def request_id(self, conversation: Conversation, number: int) -> str:
        return f"{self.run_id}.{conversation.id}.{number}"

    def play(self, conversation: Conversation) -> list[PlayedTurn]:
        """Every turn of one conversation, in order; a failed request is recorded, never raised."""
        token = mint_token(
            self.secret, tenant=conversation.tenant, user=conversation.user, plan=self.plan, **self.claims
        )
        played: list[PlayedTurn] = []
        with httpx.Client(timeout=self.timeout_s) as client:
            last: PlayedTurn | None = None
            for number, turn in enumerate(conversation.turns, 1):
                step = self._step(client, token, conversation, number, turn, last)
                played.append(step)
                if turn.scored:
                    last = step
        return played

    def _step(
        self,
        client: httpx.Client,
        token: str,
        conversation: Conversation,
        number: int,
        turn: Turn,
        last: PlayedTurn | None,
    ) -> PlayedTurn:
        kind = (
            next(k for k in ("user", "click", "agent") if getattr(turn, k) is not None)
            if not turn.hand_back
            else "hand_back"
        )
        step = PlayedTurn(conversation.id, number, kind, "", self.request_id(conversation, number))
        started = time.perf_counter()
        try:
            if kind in ("user", "click"):
                step.sent = turn.user if kind == "user" else self._button(turn.click, last)
                reply = client.post(
                    f"{self.gateway_url}{WEBHOOK}",
                    json={"sender": conversation.user, "message": step.sent},
                    headers={"Authorization": f"Bearer {token}", "X-Request-Id": step.request_id},
                )
                step.status = reply.status_code
                body = (
                    reply.json()
                    if reply.headers.get("content-type", "").startswith("application/json")
                    else None
                )
                if reply.status_code == 200 and isinstance(body, list):
                    step.replies = body
                else:
                    step.error = f"HTTP {reply.status_code}: {reply.text[:200]}"
            else:
                step.status = self._agent(client, conversation, turn)
        except (httpx.HTTPError, ValueError, LookupError) as exc:
            step.error = f"{type(exc).__name__}: {exc}"[:300]
        step.elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        return step

    @staticmethod
    def _button(click: int | str | None, last: PlayedTurn | None) -> str:
        """The payload of the clicked button of the bot's last reply (by number from 1, or by title)."""
        buttons = last.buttons if last is not None else []
        if isinstance(click, int):
            if not 1 <= click <= len(buttons):
                raise LookupError(f"the last reply has {len(buttons)} buttons, not a button {click}")
            return str(buttons[click - 1]["payload"])
        for button in buttons:
            if str(button.get("title", "")).strip().lower() == str(click).strip().lower():
                return str(button["payload"])
        raise LookupError(f"the last reply has no button {click!r}")

    def _agent(self, client: httpx.Client, conversation: Conversation, turn: Turn) -> int:
        """An agent's reply or hand-back on the conversation's open handoff (the agent page's API)."""
        listed = client.get(f"{self.crm_url}/handoffs/{conversation.tenant}")
        listed.raise_for_status()
        sender = f"{conversation.tenant}:{conversation.user}"
        ticket = next((t for t in listed.json()["handoffs"] if t.get("conversation_id") == sender), None)
        if ticket is None:
            raise LookupError("no open handoff for this conversation")
        base = f"{self.crm_url}/handoffs/{conversation.tenant}/{ticket['id']}"
        if turn.hand_back:
            reply = client.post(f"{base}/release")
        else:
            reply = client.post(f"{base}/messages", json={"text": turn.agent, "agent": "evaluation"})
        reply.raise_for_status()
        return reply.status_code

    def play_all(
        self,
        conversations: Sequence[Conversation],
        *,
        concurrency: int = 1,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, list[PlayedTurn]]:
        """Play every conversation; ``progress(turns)`` is called after each conversation."""
        results: dict[str, list[PlayedTurn]] = {}

        def one(conversation: Conversation) -> None:
            results[conversation.id] = self.play(conversation)
            if progress is not None:
                progress(len(conversation.scored_turns))

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            list(pool.map(one, conversations))
        return {c.id: results[c.id] for c in conversations}
