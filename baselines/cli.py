"""``mixedparts-baseline NAME --data DIR --split test --out predictions.json [system options]``.

One runner for every comparison system; each writes the predictions format that ``mixedparts-eval``
scores. ``mixedparts-baseline NAME --help`` lists a system's own options;
``mixedparts-baseline train lisa|glamm --data DIR --out FOLDER`` fine-tunes LISA/GLaMM (:mod:`baselines.train`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from mixedparts.errors import parse_and_run

# name -> (module, run function, help)
SYSTEMS = {
    "oracle": ("baselines.reference", "oracle", "the ground truth itself (every metric 100; checks the scoring path)"),
    "simple": ("baselines.reference", "simple",
               "ground-truth labels, every mask the bounding box of the image's object (mixedparts demo's object-box)"),
    "dino-coseg": ("baselines.dino_coseg", "run",
                   "DINOv2 patch features of all images clustered jointly; shared clusters = common parts"),
    "vlpart": ("baselines.part_detector", "run_vlpart",
               "Multi-Image VLPart: per-image open-vocabulary part detection, labels compared across images"),
    "partglee": ("baselines.part_detector", "run_partglee",
                 "Multi-Image PartGLEE: same recipe as vlpart, PartGLEE detections"),
    "lisa": ("baselines.multi_image_llava", "run_lisa",
             "Multi-Image LISA: CLIP ViT-L/14 (256 tokens per image) + Vicuna + [SEG] -> SAM, from LISA-7B-v1"),
    "glamm": ("baselines.multi_image_llava", "run_glamm",
              "Multi-Image GLaMM: CLIP ViT-L/14-336 (576 tokens per image) + Vicuna + [SEG] -> SAM, from GLaMM"),
    "cascade": ("baselines.cascade", "run",
                "describer (chat endpoint) -> structurer (JSON via chat API) -> single-image referring segmenter"),
}

# Systems whose options live apart from their (torch-importing) module, so that --help stays instant.
OPTIONS_MODULES = {"lisa": "baselines.multi_image_llava_options", "glamm": "baselines.multi_image_llava_options"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixedparts-baseline", description=__doc__.strip().splitlines()[0])
    commands = parser.add_subparsers(dest="system", metavar="NAME", required=True)
    for name, (module_name, _, text) in SYSTEMS.items():
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--data", required=True, metavar="DIR", help="a built MixedParts dataset folder")
        sub.add_argument("--split", default="test", help="the split to predict (default: test)")
        sub.add_argument("--out", required=True, metavar="FILE",
                         help="predictions file to write (.jsonl for JSON Lines)")
        sub.add_argument("--model-name", help="the 'model' field of the predictions file (default: NAME)")
        sub.add_argument("--limit", type=int, default=None, help="predict only the first N samples")
        sub.add_argument("--image-root", action="append", default=[], metavar="SOURCE=PATH",
                         help="where a source's images are, overriding the dataset manifest (repeatable)")
        importlib.import_module(OPTIONS_MODULES.get(name, module_name)).configure(sub)
    text = "fine-tune Multi-Image LISA or GLaMM on MixedParts with their own recipe (LoRA + unfrozen modules)"
    sub = commands.add_parser("train", help=text, description=text)
    importlib.import_module("baselines.train").configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return parse_and_run(build_parser(), argv, run, prog=lambda args: f"mixedparts-baseline {args.system}")


def run(args: argparse.Namespace) -> int:
    from mixedparts.errors import MixedPartsError
    from mixedparts.predictions import write_predictions

    from baselines.common import Images, load_rows

    if args.system == "train":
        from baselines.train import main as train_main

        return train_main(args)
    module_name, function, _ = SYSTEMS[args.system]
    started = time.perf_counter()
    try:
        rows = load_rows(args.data, args.split)
        if args.limit is not None:
            rows = rows[:args.limit]
        images = Images(args.data, args.image_root)
        predictions = getattr(importlib.import_module(module_name), function)(args, rows, images)
    except MixedPartsError as error:
        partial = getattr(error, "predictions", None)
        if partial:  # a run that failed as a whole still leaves what it predicted, for inspection
            path = write_predictions(args.out, partial, model=args.model_name or args.system, split=args.split)
            print(f"mixedparts-baseline {args.system}: {len(partial)} predictions written to {path} for "
                  f"inspection", file=sys.stderr)
        raise
    path = write_predictions(args.out, predictions, model=args.model_name or args.system, split=args.split)
    masks = sum(len(p["segments"]) for p in predictions)
    print(f"{args.system}: {len(predictions)} predictions with {masks} masks on {args.split} "
          f"in {time.perf_counter() - started:.1f} s -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
