"""``calico-predict``: a trained Calico checkpoint + a MixedParts split → a predictions file for ``mixedparts-eval``."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from mixedparts.argtypes import positive_int
    from mixedparts.cli import DefaultsHelpFormatter

    parser = argparse.ArgumentParser(prog="calico-predict", description=__doc__,
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="folder written by calico-train (save_pretrained)")
    parser.add_argument("--data", required=True, help="built MixedParts dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True, help="predictions file (.json or .jsonl)")
    parser.add_argument("--image-root", action="append", default=[], metavar="SOURCE=PATH",
                        help="image root of a source, overriding manifest.json")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--limit", type=int, default=None, help="first N samples only")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch intra-op threads on CPU (default: torch's, one per core); a small model gains "
                             "little from several, and on a shared machine they spin waiting for each other")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32",
                        help="weights dtype; bf16/fp16 build the model on the meta device and load the base checkpoints "
                             "straight into it (low memory), and generate under autocast")
    parser.add_argument("--glamm", help="GLaMM checkpoint (overrides the config's base_checkpoints)")
    parser.add_argument("--blip2", help="BLIP-2 / InstructBLIP checkpoint (transformers format)")
    parser.add_argument("--dino", help="DINOv2 checkpoint (transformers format)")
    parser.add_argument("--model-name", default=None, help="'model' field of the predictions file")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from mixedparts.errors import run_guarded

    return run_guarded(_run, build_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch
    from tqdm import tqdm
    from transformers import AutoTokenizer

    from calico_baseline.data import CalicoDataset, CalicoProcessor, image_roots_for, read_rows
    from calico_baseline.generation import predict_batch
    from calico_baseline.modeling import CalicoForCausalLM
    from mixedparts.predictions import write_predictions

    from mixedparts.errors import MixedPartsError

    if not Path(args.checkpoint).is_dir():
        raise MixedPartsError(f"{args.checkpoint}: checkpoint folder not found (a folder written by calico-train)")
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = read_rows(args.data, args.split, args.limit)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    model = CalicoForCausalLM.from_pretrained(args.checkpoint, dtype=dtype, device_map=args.device,
                                              base_checkpoints={"glamm": args.glamm, "blip2": args.blip2,
                                                                "dino": args.dino})
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    processor = CalicoProcessor(tokenizer, model.config)
    roots = image_roots_for(args.data, dict(r.split("=", 1) for r in args.image_root))
    dataset = CalicoDataset(rows, processor, roots, train=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, collate_fn=processor.collate)
    predictions = []
    for batch in tqdm(loader, desc="calico-predict", disable=args.quiet):
        batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(torch.device(args.device).type, dtype=dtype or torch.float32, enabled=dtype is not None):
            predictions += predict_batch(model, tokenizer, batch, args.max_new_tokens)
    name = args.model_name or getattr(model.config, "name_or_path", None) or "calico"
    path = write_predictions(args.out, predictions, model=str(name), split=args.split)
    if not args.quiet:
        print(f"wrote {len(predictions)} predictions to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
