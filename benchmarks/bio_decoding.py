"""How the entity head's word-piece probabilities become spans: each word's best label, strict BIO and the served Viterbi.

Reads a fine-tuned benchmark cell of ``benchmarks/nlu.py`` (its encoder with the entity head and its test
predictions), runs the encoder once per test message (``nlu.onnx_export.OnnxEncoder``, as the served
``OnnxSentenceFeaturizer`` does) and decodes the same probabilities three ways (``nlu.bio.decode`` with
``opening_inside`` 1: each word's best label; 0: strict BIO, an I- label never opens a span; the served
``nlu.bio.OPENING_INSIDE``). Span-level entity precision, recall and F1 (exact start, end and type;
``nlu.evaluation.entity_report``) of each, beside the cell's served figure from its predictions (which adds the
training data's lookup tables and regexes where it has any, so it equals the served row when it has none).
``--predictions`` reads other messages of the same cell, e.g. the validation model's (``--encoder inner
--predictions inner_validation.jsonl`` of the bot's cell: how ``OPENING_INSIDE`` was chosen).

    python benchmarks/bio_decoding.py                                   # the SNIPS cell
    python benchmarks/bio_decoding.py --cell nlu/build/benchmark/bot_ours_ft_bio
    python benchmarks/bio_decoding.py --cell nlu/build/benchmark/bot_ours_ft_bio --encoder inner \
        --predictions inner_validation.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.offline import apply_offline_env  # noqa: E402

apply_offline_env()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cell",
        type=Path,
        default=ROOT / "nlu" / "build" / "benchmark" / "snips_ours_ft_bio",
        help="a benchmarks/nlu.py cell of a config with an entity head (its encoder/model and results/)",
    )
    parser.add_argument("--encoder", default="model", help="the cell's encoder: model, or inner (validation)")
    parser.add_argument(
        "--predictions",
        help="a JSON lines file of the cell (default: results/predictions.jsonl, the test set)",
    )
    parser.add_argument(
        "--opening-inside", type=float, nargs="*", default=[], help="more values of opening_inside to compare"
    )
    args = parser.parse_args(argv)
    encoder_dir = args.cell / "encoder" / args.encoder
    predictions = args.cell / (args.predictions or "results/predictions.jsonl")
    if not (encoder_dir / "entities.json").is_file() or not predictions.is_file():
        print(
            f"error: {args.cell} has no encoder with an entity head or no predictions: run "
            "`python benchmarks/nlu.py --datasets snips --configs ours_ft_bio` first",
            file=sys.stderr,
        )
        return 2

    from rich.progress import track

    from nlu.bio import OPENING_INSIDE, decode, softmax
    from nlu.evaluation import entity_report, read_predictions
    from nlu.onnx_export import OnnxEncoder

    encoder = OnnxEncoder.from_dir(encoder_dir)
    labels = encoder.entity_labels
    rows = read_predictions(predictions)
    greedy, served = "each word's best label (1)", f"served ({OPENING_INSIDE})"
    readings = {
        greedy: 1.0,
        "strict BIO (0)": 0.0,
        served: OPENING_INSIDE,
        **{f"opening_inside {value}": value for value in args.opening_inside},
    }
    decoded: dict[str, list[dict]] = {name: [] for name in readings}
    seconds = dict.fromkeys(decoded, 0.0)
    changed = 0
    for row in track(rows, description="tagging the messages"):
        _, logits, encoding = encoder.encode_tagged(row["text"])
        probabilities = [softmax(r) for r in logits.tolist()]
        for name, opening in readings.items():
            start = time.perf_counter()
            spans = decode(encoding.offsets, encoding.word_ids, probabilities, labels, opening)
            seconds[name] += time.perf_counter() - start
            found = [span.as_entity(row["text"]) for span in spans]
            decoded[name].append({"entities": row["entities"], "predicted_entities": found})
        changed += decoded[greedy][-1] != decoded[served][-1]

    print(
        f"{args.cell.name}, {predictions.name} ({args.encoder} encoder): {len(rows)} messages, {changed} decoded "
        "differently by the served reading and each word's best label\n"
    )
    print("| decoding | precision | recall | F1 | decode time per message |")
    print("| --- | ---: | ---: | ---: | ---: |")
    cell_rows = [] if args.predictions else [("served, from the cell's predictions", rows)]
    for name, scored in [*decoded.items(), *cell_rows]:
        micro = entity_report(scored)["micro avg"]
        took = f"{1e6 * seconds[name] / len(rows):.0f} µs" if name in seconds else "-"
        print(
            f"| {name} | {100 * micro['precision']:.2f} | {100 * micro['recall']:.2f} "
            f"| {100 * micro['f1-score']:.2f} | {took} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
