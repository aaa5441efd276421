"""``mixedparts export-gcg``: the ground-truth files of GLaMM's GCG evaluation, for cross-checks."""

from __future__ import annotations

import argparse

HELP = "export the two ground-truth files GLaMM's eval/gcg/evaluate.py reads ({split}_gcg_coco_mask_gt.json, " \
       "{split}_gcg_coco_caption_gt.json), one task at a time"


def configure(parser: argparse.ArgumentParser) -> None:
    from mixedparts.loader import add_dataset_arguments
    from mixedparts.schema import TASKS

    add_dataset_arguments(parser, image_roots=False)
    parser.add_argument("--task", required=True, choices=TASKS + ("all",),
                        help="the task to export (GLaMM scores one task at a time); 'all' writes OUT/<task>/ for "
                             "each of the three")
    parser.add_argument("--predictions", metavar="FILE", help="also write this predictions file as GLaMM's "
                        "prediction folder (OUT/predictions/<sample_id>_IMAGE<k>.json, one file per unit)")
    parser.add_argument("--out", required=True, help="the folder to write (GLaMM's --gt_dir_path)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mixedparts.errors import MixedPartsError
    from mixedparts.export.gcg import write_gcg_ground_truth, write_gcg_predictions
    from mixedparts.loader import read_rows
    from mixedparts.schema import SAMPLE_FIELDS, TASKS

    predictions = None
    if args.predictions:
        from mixedparts.predictions import check_against_ground_truth, read_predictions

        if Path(args.predictions).is_dir():
            raise MixedPartsError("--predictions takes a predictions file (JSON or JSON Lines), not a folder")
        predictions = read_predictions(args.predictions)
    rows = read_rows(args.data, args.split, SAMPLE_FIELDS)
    if not rows:
        raise MixedPartsError(f"{args.data}: split {args.split!r} holds no samples")
    if predictions is not None:
        check_against_ground_truth(predictions, {r["sample_id"]: [(i["height"], i["width"]) for i in r["images"]]
                                                 for r in rows}, args.split)
    tasks = TASKS if args.task == "all" else (args.task,)
    out = Path(args.out)
    for task in tasks:
        task_rows = [row for row in rows if row["task"] == task]
        folder = out / task if args.task == "all" else out
        if not task_rows:
            print(f"{task}: no samples in split {args.split!r}; nothing written")
            continue
        mask_path, caption_path = write_gcg_ground_truth(task_rows, folder, args.split)
        units = sum(len(r["images"]) for r in task_rows)
        print(f"{task}: {len(task_rows):,} samples, {units:,} units -> {mask_path}, {caption_path}")
        if predictions is not None:
            count = write_gcg_predictions(task_rows, predictions.by_sample, folder / "predictions")
            print(f"{task}: {count:,} prediction files -> {folder / 'predictions'}")
    print(f"GLaMM: python eval/gcg/evaluate.py --split {args.split} --gt_dir_path GTDIR --prediction_dir_path PREDDIR"
          f" (per task; the MixedParts headline is the mean of the three task scores)")
    return 0
