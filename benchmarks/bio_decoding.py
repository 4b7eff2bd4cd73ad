"""How the entity head's word-piece probabilities become spans: each word's best label against BIO-constrained Viterbi.

Reads a fine-tuned benchmark cell of ``benchmarks/nlu.py`` (its encoder with the entity head and its test
predictions), runs the encoder once per test message (``nlu.onnx_export.OnnxEncoder``, as the served
``OnnxSentenceFeaturizer`` does) and decodes the same probabilities both ways (``nlu.bio.decode``; the served
``BioEntityExtractor`` uses ``constrained=True``). Span-level entity precision, recall and F1 (exact start, end and
type; ``nlu.evaluation.entity_report``) of both, beside the cell's served figure from its predictions (which adds the
training data's lookup tables and regexes where it has any, so it equals the constrained row when it has none).

    python benchmarks/bio_decoding.py                                   # the SNIPS cell
    python benchmarks/bio_decoding.py --cell nlu/build/benchmark/bot_ours_ft_bio
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
    args = parser.parse_args(argv)
    encoder_dir, predictions = args.cell / "encoder" / "model", args.cell / "results" / "predictions.jsonl"
    if not (encoder_dir / "entities.json").is_file() or not predictions.is_file():
        print(
            f"error: {args.cell} has no encoder with an entity head or no predictions: run "
            "`python benchmarks/nlu.py --datasets snips --configs ours_ft_bio` first",
            file=sys.stderr,
        )
        return 2

    from rich.progress import track

    from nlu.bio import decode, softmax
    from nlu.evaluation import entity_report, read_predictions
    from nlu.onnx_export import OnnxEncoder

    encoder = OnnxEncoder.from_dir(encoder_dir)
    labels = encoder.entity_labels
    rows = read_predictions(predictions)
    decoded: dict[str, list[dict]] = {"each word's best label": [], "BIO-constrained Viterbi (served)": []}
    seconds = dict.fromkeys(decoded, 0.0)
    changed = 0
    for row in track(rows, description="tagging the test messages"):
        _, logits, encoding = encoder.encode_tagged(row["text"])
        probabilities = [softmax(r) for r in logits.tolist()]
        found = []
        for name, constrained in zip(decoded, (False, True), strict=True):
            start = time.perf_counter()
            spans = decode(
                encoding.offsets, encoding.word_ids, probabilities, labels, constrained=constrained
            )
            seconds[name] += time.perf_counter() - start
            found.append([span.as_entity(row["text"]) for span in spans])
            decoded[name].append({"entities": row["entities"], "predicted_entities": found[-1]})
        changed += found[0] != found[1]

    print(f"{args.cell.name}: {len(rows)} test messages, {changed} decoded differently by the two readings\n")
    print("| decoding | precision | recall | F1 | decode time per message |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, scored in [*decoded.items(), ("served, from the cell's predictions", rows)]:
        micro = entity_report(scored)["micro avg"]
        took = f"{1e6 * seconds[name] / len(rows):.0f} µs" if name in seconds else "-"
        print(
            f"| {name} | {100 * micro['precision']:.2f} | {100 * micro['recall']:.2f} "
            f"| {100 * micro['f1-score']:.2f} | {took} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
