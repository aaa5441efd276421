"""``mixedparts demo``: the whole pipeline on the embedded synthetic sources, in about a minute."""

from __future__ import annotations

import argparse

HELP = ("synthesize tiny sources, build MixedParts from them, score two reference predictors with "
        "mixedparts-eval and draw a sample with predictions")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="mixedparts-demo", help="working folder (created; a previous demo folder "
                        "is reused: its sources are kept and its build verified)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic sources and of the build")
    parser.add_argument("--workers", type=int, default=2, help="processes for the build and the scoring")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mixedparts.build import build
    from mixedparts.build.options import BuildOptions
    from mixedparts.errors import MixedPartsError
    from mixedparts.images import manifest_image_roots, open_image
    from mixedparts.metrics.cli import main as eval_main
    from mixedparts.metrics.ground_truth import read_dataset_split
    from mixedparts.predictions import write_predictions
    from mixedparts.reference_predictions import PREDICTORS, predict
    from mixedparts.schema import SAMPLE_FIELDS
    from mixedparts.sources import open_readers
    from mixedparts.synth import DRAWN_RECORD, reader_roots, synthesize
    from mixedparts.viz import draw_sample

    out = Path(args.out)
    sources = out / "sources"
    if not (sources / DRAWN_RECORD).is_file():
        print(f"[1/4] synthesizing tiny PACO-LVIS, PartImageNet and ADE20K-Part-234 releases in {sources}")
        synthesize(sources, scale="tiny", seed=args.seed)
    else:
        print(f"[1/4] reusing the synthetic releases in {sources}")
    readers = open_readers(**reader_roots(sources))
    dataset = out / "dataset"
    print(f"[2/4] building MixedParts in {dataset}")
    result = build(readers, dataset, BuildOptions(seed=args.seed), workers=max(1, args.workers))
    print("      " + ", ".join(f"{split}: {n:,} samples" for split, n in result.split_rows.items()))

    rows = read_dataset_split(dataset, "test", columns=SAMPLE_FIELDS)
    if not rows:
        raise MixedPartsError(f"{dataset}: the test split is empty")
    print("[3/4] scoring two reference predictors on the test split with mixedparts-eval")
    predictions = {}
    for name in PREDICTORS:
        predictions[name] = predict(name, rows)
        path = write_predictions(out / f"predictions-{name}.json", predictions[name], model=name, split="test")
        print(f"\n$ mixedparts-eval {path} --data {dataset} --split test --json {out / f'eval-{name}.json'}")
        code = eval_main([str(path), "--data", str(dataset), "--split", "test", "--json",
                          str(out / f"eval-{name}.json"), "--workers", str(max(1, args.workers))])
        if code != 0:
            return code

    # A part sample shows the most: its object sentence and its part labels.
    row = next((r for r in rows if r["task"] == "unique_parts"), rows[0])
    prediction = next(p for p in predictions["object-box"] if p["sample_id"] == row["sample_id"])
    roots = manifest_image_roots(dataset)
    images = [open_image(row, i, roots) for i in range(len(row["images"]))]
    picture = out / "sample.png"
    draw_sample(row, images, prediction, title="object-box").save(picture)
    print(f"\n[4/4] drew sample {row['sample_id']} with the object-box prediction: {picture}")
    return 0
