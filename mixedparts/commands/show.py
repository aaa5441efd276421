"""``mixedparts show``: draw a sample (optionally with a prediction), or a contact sheet of random samples."""

from __future__ import annotations

import argparse

HELP = "draw a sample (images side by side, masks, labels, question and answer; with --predictions a second " \
       "row with per-segment IoU), or with --grid N a contact sheet of N random samples"


def configure(parser: argparse.ArgumentParser) -> None:
    from mixedparts.loader import add_dataset_arguments
    from mixedparts.schema import TASKS

    add_dataset_arguments(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, default=None, help="position of the sample in the split (in --task's "
                       "samples when --task is given); default 0")
    which.add_argument("--sample-id", help="the sample with this id")
    which.add_argument("--grid", type=int, metavar="N", help="a contact sheet of N random samples instead")
    parser.add_argument("--task", choices=TASKS, help="only samples of this task")
    parser.add_argument("--predictions", metavar="FILE", help="a predictions file (JSON or JSON Lines): draw the "
                        "sample's prediction in a second row, with each ground-truth segment's IoU")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --grid sample choice")
    parser.add_argument("--columns", type=int, default=3, help="cards per row of the --grid contact sheet")
    parser.add_argument("--blank", action="store_true", help="draw on blank canvases of the images' sizes (when the "
                        "images are not at hand)")
    parser.add_argument("--image-row", action="store_true", help="one sample: add a row of the plain images, "
                        "without masks, above the ground truth")
    parser.add_argument("--out", help="PNG to write (default: sample.png, or grid.png with --grid)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from mixedparts.errors import MixedPartsError
    from mixedparts.loader import resolver_from_args, row_positions, rows_at
    from mixedparts.viz import draw_grid, draw_sample

    resolver = resolver_from_args(args)

    def images_of(row):
        if args.blank:
            return [Image.new("RGB", (int(i["width"]), int(i["height"])), (205, 205, 205)) for i in row["images"]]
        return resolver.open_all(row["source"], row["split"], row["images"])

    if args.grid is not None:
        if args.grid < 1:
            raise MixedPartsError("--grid needs a positive number of samples")
        if args.predictions:
            raise MixedPartsError("--predictions draws one sample; leave out --grid")
        positions = row_positions(args.data, args.split, task=args.task)
        if len(positions) == 0:
            what = f"{args.task} samples" if args.task else "samples"
            raise MixedPartsError(f"{args.data}: no {what} in split {args.split!r}")
        rng = np.random.default_rng(args.seed)
        chosen = sorted(rng.choice(positions, size=min(args.grid, len(positions)), replace=False).tolist())
        rows = rows_at(args.data, args.split, chosen)
        picture = draw_grid(rows, [images_of(row) for row in rows], columns=max(1, args.columns))
        out = Path(args.out or "grid.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        picture.save(out)
        print(f"drew {len(rows)} samples of {args.split} (seed {args.seed}) into {out} "
              f"({picture.width}x{picture.height})")
        return 0

    if args.sample_id is not None:
        positions = row_positions(args.data, args.split, sample_id=args.sample_id)
        if len(positions) == 0:
            raise MixedPartsError(f"{args.data}: no sample {args.sample_id!r} in split {args.split!r}")
        position = int(positions[0])
    else:
        index = 0 if args.index is None else args.index
        positions = row_positions(args.data, args.split, task=args.task)
        if not -len(positions) <= index < len(positions):
            what = f"{args.task} samples" if args.task else "samples"
            raise MixedPartsError(f"--index {index} is out of range: split {args.split!r} has {len(positions)} {what}")
        position = int(positions[index])
    (row,) = rows_at(args.data, args.split, [position])

    prediction, title = None, None
    if args.predictions:
        from mixedparts.predictions import read_predictions

        if Path(args.predictions).is_dir():
            raise MixedPartsError("--predictions takes a predictions file (JSON or JSON Lines), not a folder")
        predictions = read_predictions(args.predictions, format="auto")
        prediction = predictions.by_sample.get(row["sample_id"])
        title = predictions.model or Path(args.predictions).name
        if prediction is None:
            print(f"note: {args.predictions} has no prediction for {row['sample_id']}: drawn as empty")
            prediction = {"sample_id": row["sample_id"], "text": "", "segments": []}
            title = f"{title}: no prediction for this sample"
    picture = draw_sample(row, images_of(row), prediction, title=title, image_row=args.image_row)
    out = Path(args.out or "sample.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)
    print(f"drew {row['sample_id']} ({row['task']}, {len(row['segments'])} masks) into {out} "
          f"({picture.width}x{picture.height})")
    return 0
