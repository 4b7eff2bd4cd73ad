"""The conversation test set: whole conversations with what each reply must be (``nlu/conversations/*.yml``).

Format (version 1; the file's header comment is the reference for writers)::

    version: 1
    customers:                      # CRM fixtures the evaluation seeds into its own fresh store
      - {tenant: acme, user: dana, name: Dana Weber, email: dana@example.com,
         orders: [{id: ORD-20001, status: shipped, carrier: DHL, tracking: JD01, eta: 2026-12-10, total: "59.90"}]}
    conversations:
      - id: acme-delivery-followup
        tenant: acme
        user: dana
        tags: [knowledge, followup]
        description: ...
        turns:
          - user: How long does it take to ship to Spain?
            expect: {handler: knowledge, intent: ask_delivery, source: delivery-times,
                     reference: Standard delivery to Spain takes 3-5 business days., says: ["3-5"]}
          - click: 1                # the first button of the bot's last reply
            expect: {...}
          - agent: Hi, this is Sam  # a human agent replies (no bot turn)
          - hand_back: true         # the agent hands the conversation back

``expect``: ``handler`` (:mod:`app.orchestration.handlers`), ``intent``, ``source`` (doc id or list, any one
cited is right), ``reference`` (the ideal answer), ``says`` / ``not_says`` (substrings, case-insensitive,
dashes and whitespace normalised), ``ticket`` (a ticket opened by this turn), ``buttons`` (the reply offers
buttons). :func:`load` reads and checks a file; every problem is one line naming the file, the conversation
and the turn (:class:`ConversationFileError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.channels.turns import ID_PATTERN, TENANT_PATTERN
from app.orchestration.handlers import HANDLERS, LANGUAGE
from app.orchestration.router import NLU_FALLBACK
from app.order_ids import ORDER_ID_PATTERN

ORDER_ID = ORDER_ID_PATTERN  # the one definition: app/order_ids.py
ORDER_STATUSES = ("processing", "shipped", "out_for_delivery", "delivered", "cancelled")


class ConversationFileError(ValueError):
    """A conversation file that cannot be played: the message is one line naming file, conversation, turn."""


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Expect(BaseModel):
    """What must be true of the bot's reply to one turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    handler: str
    intent: str | None = None
    source: tuple[str, ...] = ()
    reference: str | None = None
    says: tuple[str, ...] = ()
    not_says: tuple[str, ...] = ()
    ticket: bool = False
    buttons: bool = False

    _as_list = field_validator("source", "says", "not_says", mode="before")(_listed)

    @field_validator("handler")
    @classmethod
    def _known_handler(cls, value: str) -> str:
        if value not in HANDLERS:
            raise ValueError(f"unknown handler {value!r} (one of {', '.join(sorted(HANDLERS))})")
        return value


class Turn(BaseModel):
    """One step: the user types (``user``) or clicks a button (``click``), or an agent acts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str | None = None
    click: int | str | None = None
    agent: str | None = None
    hand_back: bool = False
    expect: Expect | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Turn:
        kinds = [k for k in ("user", "click", "agent") if getattr(self, k) is not None]
        kinds += ["hand_back"] if self.hand_back else []
        if len(kinds) != 1:
            raise ValueError("a turn is exactly one of user, click, agent, hand_back")
        if self.scored and self.expect is None:
            raise ValueError(f"a {kinds[0]} turn needs `expect`")
        if not self.scored and self.expect is not None:
            raise ValueError(f"a {kinds[0]} turn has no bot reply to expect anything of")
        if self.user is not None and not self.user.strip():
            raise ValueError("`user` must not be empty")
        if isinstance(self.click, int) and self.click < 1:
            raise ValueError("`click` counts buttons from 1")
        return self

    @property
    def scored(self) -> bool:
        """A turn the bot answers (and the evaluation scores)."""
        return self.user is not None or self.click is not None


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ORDER_ID.pattern)
    status: Literal["processing", "shipped", "out_for_delivery", "delivered", "cancelled"]
    carrier: str | None = None
    tracking: str | None = None
    eta: date | None = None
    total: Decimal = Field(ge=0)


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(pattern=TENANT_PATTERN.pattern)
    user: str = Field(pattern=ID_PATTERN.pattern)
    name: str
    email: str
    orders: tuple[Order, ...] = ()


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")
    tenant: str = Field(pattern=TENANT_PATTERN.pattern)
    user: str = Field(pattern=ID_PATTERN.pattern)
    tags: tuple[str, ...] = ()
    description: str = ""
    turns: tuple[Turn, ...] = Field(min_length=1)

    @property
    def scored_turns(self) -> list[tuple[int, Turn]]:
        """``(turn number from 1, turn)`` of the turns the bot answers."""
        return [(n, t) for n, t in enumerate(self.turns, 1) if t.scored]


class ConversationSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    customers: tuple[Customer, ...] = ()
    conversations: tuple[Conversation, ...] = ()

    def select(
        self, *, tags: Iterable[str] = (), ids: Iterable[str] = (), limit: int | None = None
    ) -> ConversationSet:
        """A slice: conversations with any of ``tags`` (all when none given), or the ``ids`` given, then the
        first ``limit`` (the file's order); the customers stay (fixtures are cheap)."""
        wanted_tags, wanted_ids = set(tags), set(ids)
        chosen = [
            c
            for c in self.conversations
            if (not wanted_tags or wanted_tags & set(c.tags)) and (not wanted_ids or c.id in wanted_ids)
        ]
        return self.model_copy(update={"conversations": tuple(chosen[:limit] if limit else chosen)})

    @property
    def scored_turns(self) -> int:
        return sum(len(c.scored_turns) for c in self.conversations)


def _where(path: Path, raw: Any, loc: Sequence[Any]) -> str:
    """``file: conversation <id>, turn <n>`` for a pydantic error location."""
    parts = [str(path)]
    if len(loc) >= 2 and loc[0] == "conversations" and isinstance(loc[1], int):
        try:
            cid = raw["conversations"][loc[1]].get("id") or f"#{loc[1] + 1}"
        except (KeyError, IndexError, TypeError, AttributeError):
            cid = f"#{loc[1] + 1}"
        parts.append(f"conversation {cid}")
        if len(loc) >= 4 and loc[2] == "turns" and isinstance(loc[3], int):
            parts.append(f"turn {loc[3] + 1}")
    elif len(loc) >= 2 and loc[0] == "customers" and isinstance(loc[1], int):
        parts.append(f"customer #{loc[1] + 1}")
    return ", ".join(parts)


def load(
    path: Path | str, *, intents: Iterable[str] | None = None, doc_ids: Iterable[str] | None = None
) -> ConversationSet:
    """Read and check a conversation file; ``intents`` (the domain's) and ``doc_ids`` (the index's), when
    given, must hold every expected intent and source. Raises :class:`ConversationFileError`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConversationFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConversationFileError(f"{path}:{line} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConversationFileError(f"{path}: expected a mapping with `version` and `conversations`")
    try:
        conversations = ConversationSet.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = list(error["loc"])
        # the field inside the conversation/turn/customer that _where names (the leading path is the place)
        inside = loc[4:] if loc[:1] == ["conversations"] and loc[2:3] == ["turns"] else loc[2:]
        field = ".".join(str(p) for p in inside if not isinstance(p, int))
        message = " ".join(error["msg"].removeprefix("Value error, ").split())
        where = _where(path, raw, loc)
        raise ConversationFileError(
            f"{where}: {field}: {message}" if field else f"{where}: {message}"
        ) from None
    _check(path, conversations, set(intents) if intents is not None else None, doc_ids)
    return conversations


def _check(
    path: Path, data: ConversationSet, intents: set[str] | None, doc_ids: Iterable[str] | None
) -> None:
    known_docs = set(doc_ids) if doc_ids is not None else None
    seen_ids: set[str] = set()
    seen_orders: set[tuple[str, str]] = set()
    for number, customer in enumerate(data.customers, 1):
        for order in customer.orders:
            if (customer.tenant, order.id) in seen_orders:
                raise ConversationFileError(f"{path}, customer #{number}: order {order.id} listed twice")
            seen_orders.add((customer.tenant, order.id))
    for conversation in data.conversations:
        if conversation.id in seen_ids:
            raise ConversationFileError(f"{path}, conversation {conversation.id}: the id is used twice")
        seen_ids.add(conversation.id)
        previous: Turn | None = None
        for number, turn in enumerate(conversation.turns, 1):
            where = f"{path}, conversation {conversation.id}, turn {number}"
            expect = turn.expect
            if turn.click is not None and (previous is None or previous.expect is None):
                raise ConversationFileError(f"{where}: a click must follow a turn the bot answered")
            if expect is not None:
                if turn.user is not None and expect.intent is None and expect.handler != LANGUAGE:
                    raise ConversationFileError(f"{where}: expect.intent is required for a user turn")
                if intents is not None and expect.intent is not None and expect.intent not in intents:
                    raise ConversationFileError(f"{where}: unknown intent {expect.intent!r}")
            previous = turn if turn.scored else previous
    if known_docs is not None:
        check_sources(path, data, known_docs)


def check_sources(path: Path | str, data: ConversationSet, doc_ids: Iterable[str]) -> None:
    """Every expected source is a document of the index (:class:`ConversationFileError` naming the turn)."""
    known = set(doc_ids)
    for conversation in data.conversations:
        for number, turn in conversation.scored_turns:
            assert turn.expect is not None
            if missing := sorted(set(turn.expect.source) - known):
                raise ConversationFileError(
                    f"{path}, conversation {conversation.id}, turn {number}: unknown source {', '.join(missing)}"
                )


def domain_intents(domain_file: Path | str) -> list[str]:
    """The intents a turn may expect: those of a Rasa domain file, and ``nlu_fallback`` (what the served
    model's FallbackClassifier predicts for a message it cannot place)."""
    domain = yaml.safe_load(Path(domain_file).read_text(encoding="utf-8")) or {}
    return [*(i if isinstance(i, str) else next(iter(i)) for i in domain.get("intents") or []), NLU_FALLBACK]
