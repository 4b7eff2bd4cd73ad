"""Stage promote_nlu: the gate. The registered challenger becomes ``champion`` (and is served) only when
neither its NLU figures nor the bot-level figures of the served stack are worse than the champion's.

Inputs: the version ``register_nlu`` registered (``--registry``), its NLU figures (``--nlu-metrics``, from
evaluate_nlu) and the figures of the conversation test set played through the stack with it
(``--bot-metrics``, from evaluate_bot; the ``promote_nlu.bot_set`` file's slice, the frozen set by default,
so the comparison is like for like). Each rule of ``promote_nlu.gate`` compares one figure with the
champion's (recorded as tags on its model version): ``max_drop`` for figures where higher is better,
``max_rise`` (relative) for cost. The first version becomes champion; a figure the champion has no record of
is not compared (said in the reasons).

Promoted: alias ``champion`` moves, its tarball is copied to ``--serve`` (``nlu/serving/model.tar.gz``, what
``make run`` serves). Refused: the champion stays and keeps being served. The same version evaluated again
(the index or the tier/routing params changed, not the model) is compared the same way; the verdict and the
figures are recorded, but the index and params.yaml are served as built (they are not versions in the
registry), so a refusal there is a warning to act on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines._common import load_params, log_metrics, stage_run, tracking_uri, write_json
from pipelines.register_nlu import BOT_TAG, CHAMPION, NLU_TAG, download

STAGE = "promote_nlu"


def compare(
    new: Mapping[str, float], old: Mapping[str, float] | None, rules: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One row per rule ``{figure: {max_drop: x}}`` or ``{figure: {max_rise: fraction}}``: the ``figure``,
    the ``challenger``'s and the ``champion``'s values, their ``diff``, the ``limit`` and ``ok`` (None when
    there is no value to compare)."""
    rows = []
    for name, rule in rules.items():
        value, before = new.get(name), (old or {}).get(name)
        if "max_rise" in rule:
            limit = f"at most +{float(rule['max_rise']):.0%}"
            allowed = None if before is None else before * (1 + float(rule["max_rise"])) + 1e-9
            ok = None if value is None or allowed is None else value <= allowed
        else:
            limit = f"drop at most {float(rule.get('max_drop', 0.0))}"
            allowed = None if before is None else before - float(rule.get("max_drop", 0.0)) - 1e-9
            ok = None if value is None or allowed is None else value >= allowed
        diff = None if value is None or before is None else round(value - before, 6)
        rows.append({"figure": name, "challenger": value, "champion": before, "diff": diff, "limit": limit,
                     "ok": ok})  # fmt: skip
    return rows


def gate(
    new: Mapping[str, float], old: Mapping[str, float] | None, rules: Mapping[str, Mapping[str, Any]]
) -> tuple[bool, list[str]]:
    """(promote?, reasons): every rule of :func:`compare` that could be compared holds."""
    if old is None:
        return True, ["no champion yet: the first model becomes champion"]
    promote, reasons = True, []
    for row in compare(new, old, rules):
        name, value, before = row["figure"], row["challenger"], row["champion"]
        if row["ok"] is None:
            reasons.append(f"{name}: not compared (challenger {value}, champion {before})")
            continue
        promote &= row["ok"]
        verdict = "ok" if row["ok"] else "refused"
        reasons.append(f"{name}: {value:.4f} vs champion {before:.4f} ({verdict}: {row['limit']})")
    return promote, reasons


def _tags(version: Any, prefix: str) -> dict[str, float]:
    out = {}
    for key, value in (version.tags or {}).items():
        if key.startswith(prefix):
            try:
                out[key.removeprefix(prefix)] = float(value)
            except ValueError:
                continue
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, required=True, help="register_nlu's registry.json")
    parser.add_argument("--nlu-metrics", type=Path, required=True, help="evaluate_nlu's metrics.json")
    parser.add_argument("--bot-metrics", type=Path, required=True, help="evaluate_bot's metrics.json")
    parser.add_argument("--serve", type=Path, required=True, help="where the champion's model is written")
    parser.add_argument("--out", type=Path, required=True, help="the decision (JSON)")
    args = parser.parse_args(argv)
    params = load_params(STAGE)
    rules: dict[str, dict[str, Any]] = params.get("gate") or {}
    registered = json.loads(args.registry.read_text())
    nlu = {
        k: float(v) for k, v in json.loads(args.nlu_metrics.read_text()).items() if isinstance(v, int | float)
    }
    bot_all = json.loads(args.bot_metrics.read_text())
    bot_set = str(params.get("bot_set", "frozen"))
    bot = {k: float(v) for k, v in (bot_all.get(bot_set) or {}).items() if isinstance(v, int | float)}
    figures = {**nlu, **bot}

    import mlflow
    from mlflow.exceptions import MlflowException

    name, number = registered["model_name"], str(registered["version"])
    with stage_run(STAGE, params):
        client = mlflow.MlflowClient(tracking_uri=tracking_uri())
        try:
            champion = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            champion = None
        old = None if champion is None else {**_tags(champion, NLU_TAG), **_tags(champion, BOT_TAG)}
        promote, reasons = gate(figures, old, rules)
        comparison = compare(figures, old, rules)
        same = champion is not None and str(champion.version) == number
        if promote or not same:  # a refused re-evaluation of the champion must not lower its record
            for key, value in bot.items():
                client.set_model_version_tag(name, number, f"{BOT_TAG}{key}", str(value))
        if promote:
            client.set_registered_model_alias(name, CHAMPION, number)
            champion = client.get_model_version(name, number)
        client.set_model_version_tag(name, number, "gate", "promoted" if promote else "refused")
        assert champion is not None
        download(client, champion, args.serve)
        decision = {
            "model_name": name,
            "version": int(number),
            "promoted": promote,
            "champion_version": int(champion.version),
            "same_version": same,
            "reasons": reasons,
            "comparison": comparison,
            "bot_set": bot_set,
            "llm": bot_all.get("llm"),
        }
        log_metrics(STAGE, {"promoted": int(promote), "champion_version": int(champion.version)})
        mlflow.set_tag("gate", "; ".join(reasons))
    write_json(args.out, decision)
    verdict = "promoted to champion" if promote else "refused: the champion stays"
    if same and not promote:
        verdict = "refused: the index or params got worse for the served model (served as built: act on it)"
    print(f"{STAGE}: {name} v{number} {verdict}; serving v{champion.version} ({'; '.join(reasons)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
