"""Command-line options of the lisa and glamm systems, apart from the model code so that
``mixedparts-baseline lisa --help`` answers without importing torch and transformers."""

from __future__ import annotations


def configure(parser) -> None:
    parser.add_argument("--model", metavar="DIR", help="fine-tuned model folder (as save_pretrained writes it)")
    parser.add_argument("--checkpoint", metavar="PATH", help="the official checkpoint (LISA-7B-v1 / "
                        "GLaMM-GranD-Pretrained), file or folder")
    parser.add_argument("--clip", metavar="PATH", help="a transformers CLIP checkpoint, when the official one "
                        "lacks the vision tower")
    parser.add_argument("--tokenizer", metavar="DIR", help="tokenizer folder (default: the checkpoint folder)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="fp32",
                        help="weights dtype; bf16/fp16 load the official checkpoint shard by shard straight into it "
                             "(a 7B model then needs ~14 GB, not ~28 GB plus a CPU copy) and generate under autocast")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=128)
