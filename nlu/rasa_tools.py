"""Rasa-environment helpers the pipeline calls as one process each (``python -m nlu.rasa_tools ...``).

- ``split``: stratified train/test split of NLU data, and optionally a validation split of the training
  part, in one process (``rasa data split nlu`` would need two).
- ``predict``: parse every example of Rasa NLU files (YAML or JSON, read by Rasa's own loader) with a
  trained model exactly as ``rasa run`` does (``Agent.parse_message``), one message at a time, timing
  each. Writes one JSON line per example: gold intent and entities, the served prediction (after
  FallbackClassifier), the classifier's own ranking (without ``nlu_fallback``), entities, latency.
- ``train-predict PLAN.json``: for each job of the plan, ``rasa train nlu`` and then ``predict`` with the new
  model, all in one process (each Rasa start-up costs seconds). A job is ``{"config", "train": [files],
  "models", "name", "predict": {"out.jsonl": [files]}, "info"}``; ``info`` receives the training time.

Run in the Rasa environment only (``nlu.rasa_runner.run_rasa_tool`` from the main environment).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import skops.io  # noqa: F401  (before TensorFlow: faster start-up, see nlu/rasa_cli.py)

FALLBACK_INTENT = "nlu_fallback"
WARMUP_MESSAGES = 3


def split(
    data: list[str], out: Path, test_fraction: float, seed: int, validation_fraction: float = 0.0
) -> None:
    """Write ``training_data.yml``/``test_data.yml`` (and ``validation/{training,test}_data.yml``)."""
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData

    merged = TrainingData().merge(*[load_data(path) for path in data])
    train, test = merged.train_test_split(1 - test_fraction, seed)
    out.mkdir(parents=True, exist_ok=True)
    train.persist_nlu(str(out / "training_data.yml"))
    test.persist_nlu(str(out / "test_data.yml"))
    if validation_fraction > 0:
        inner, validation = train.train_test_split(1 - validation_fraction, seed)
        (out / "validation").mkdir(exist_ok=True)
        inner.persist_nlu(str(out / "validation" / "training_data.yml"))
        validation.persist_nlu(str(out / "validation" / "test_data.yml"))
    print(f"split: {len(train.intent_examples)} training, {len(test.intent_examples)} test examples")


def _entities(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {
            "start": e.get("start"),
            "end": e.get("end"),
            "entity": e.get("entity"),
            "value": e.get("value"),
            **({"extractor": e["extractor"]} if e.get("extractor") else {}),
        }
        for e in items or []
    ]


def predict(model: Path, data: list[str], out: Path) -> dict[str, Any]:
    """Parse each example with the model, as the server does; write JSON lines to ``out``."""
    from rasa.core.agent import Agent
    from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
    from rasa.shared.nlu.training_data.loading import load_data
    from tqdm import tqdm

    examples = [m for path in data for m in load_data(path).intent_examples if m.get(TEXT)]
    load_start = time.perf_counter()
    agent = Agent.load(str(model))
    load_seconds = time.perf_counter() - load_start
    loop = asyncio.new_event_loop()
    for message in examples[:WARMUP_MESSAGES]:  # lazy initialisation is not parse latency
        loop.run_until_complete(agent.parse_message(message.get(TEXT)))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for message in tqdm(
            examples, desc=f"parse {Path(data[0]).name}", unit="msg", mininterval=5, file=sys.stderr
        ):
            text = message.get(TEXT)
            start = time.perf_counter()
            result = loop.run_until_complete(agent.parse_message(text))
            latency_ms = (time.perf_counter() - start) * 1000
            intent = result.get("intent") or {}
            ranking = [
                (r["name"], float(r["confidence"]))
                for r in result.get("intent_ranking") or []
                if r.get("name") != FALLBACK_INTENT
            ]
            if not ranking and intent.get("name") not in (None, FALLBACK_INTENT):
                ranking = [(intent["name"], float(intent.get("confidence") or 0.0))]
            f.write(
                json.dumps(
                    {
                        "text": text,
                        "intent": message.get(INTENT),
                        "entities": _entities(message.get(ENTITIES)),
                        "predicted": intent.get("name"),
                        "confidence": float(intent.get("confidence") or 0.0),
                        "ranking": ranking,
                        "predicted_entities": _entities(result.get("entities")),
                        "latency_ms": round(latency_ms, 3),
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    loop.close()
    return {"examples": len(examples), "load_seconds": round(load_seconds, 2)}


def train_nlu(config: Path, data: list[str], out_dir: Path, name: str) -> tuple[Path, float]:
    """``rasa train nlu``; return the model path and the training time in seconds."""
    from rasa.model_training import train_nlu as rasa_train_nlu

    start = time.perf_counter()
    logging.getLogger("nlu").info(f"rasa train nlu: {config.name} on {', '.join(map(str, data))}")
    path = rasa_train_nlu(
        str(config), data[0] if len(data) == 1 else data, str(out_dir), fixed_model_name=name
    )
    if not path:
        raise SystemExit(f"rasa train nlu produced no model from {data}")
    return Path(path), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_split = sub.add_parser("split")
    p_split.add_argument("--data", nargs="+", required=True)
    p_split.add_argument("--out", type=Path, required=True)
    p_split.add_argument("--test-fraction", type=float, required=True)
    p_split.add_argument("--validation-fraction", type=float, default=0.0)
    p_split.add_argument("--seed", type=int, default=42)
    p_predict = sub.add_parser("predict")
    p_predict.add_argument("--model", type=Path, required=True)
    p_predict.add_argument("--data", nargs="+", required=True)
    p_predict.add_argument("--out", type=Path, required=True)
    p_both = sub.add_parser("train-predict")
    p_both.add_argument("plan", type=Path, help="JSON list of jobs (see the module docstring)")
    args = parser.parse_args(argv)
    from rasa.utils.log_utils import configure_structlog

    logging.basicConfig(level=logging.WARNING)
    configure_structlog(logging.WARNING)  # as quiet as a served model at its default level
    ours = logging.getLogger("nlu")  # our components say how long their training steps take
    ours.setLevel(logging.INFO)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    ours.addHandler(handler)
    ours.propagate = False

    if args.command == "split":
        split(args.data, args.out, args.test_fraction, args.seed, args.validation_fraction)
    elif args.command == "predict":
        info = predict(args.model, args.data, args.out)
        print(json.dumps(info))
    else:
        for job in json.loads(args.plan.read_text()):
            model, seconds = train_nlu(Path(job["config"]), job["train"], Path(job["models"]), job["name"])
            info: dict[str, Any] = {"model": str(model), "train_seconds": round(seconds, 2), "predict": {}}
            for target, files in job["predict"].items():
                info["predict"][target] = predict(model, files, Path(target))
            Path(job["info"]).parent.mkdir(parents=True, exist_ok=True)
            Path(job["info"]).write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
