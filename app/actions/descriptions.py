"""What each intent means to a customer (``nlu/intent_descriptions.csv``), per tenant: the two-stage fallback's
buttons, the knowledge action's re-reading of a question with its intent, and a skill turn's conversation topic."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from app.settings import ROOT

DESCRIPTIONS_FILE = ROOT / "nlu" / "intent_descriptions.csv"


@lru_cache(maxsize=16)
def intent_descriptions(tenant: str = "", path: Path = DESCRIPTIONS_FILE) -> dict[str, str]:
    """Intent -> what it means to a customer, in ``tenant``'s words where the file has a row for that tenant
    (an energy supplier's ``ask_billing`` is about meter readings, a shop's about invoices), else the default
    row's (empty ``tenant`` column)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    described = {row["intent"]: row["description"] for row in rows if not row.get("tenant")}
    if tenant:
        described |= {row["intent"]: row["description"] for row in rows if row.get("tenant") == tenant}
    return described
