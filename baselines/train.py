"""``mixedparts-baseline train lisa|glamm --data DIR --out FOLDER [--config YAML] [--set section.key=value] [--resume]``.

Fine-tunes Multi-Image LISA or GLaMM on MixedParts with their own recipe (docs/model.md): LoRA r 8 /
alpha 16 on q/v plus the modules both repositories unfreeze (SAM mask decoder, ``text_hidden_fcs``,
``lm_head``, ``embed_tokens``); AdamW lr 3e-4, betas (0.9, 0.95), weight decay 0, WarmupDecayLR with
100 warm-up steps, batch 2 × 10 accumulation, 5000 steps (LISA: 10 epochs × 500 steps), clip 1.0.

The loop is :func:`calico_baseline.train.train` itself (accelerate: DDP/FSDP/DeepSpeed, mixed precision,
schedule, periodic checkpoints, exact ``--resume``, logging), reused by import: only its model builder
is swapped for the duration of the call (:func:`_builder`), so nothing is copied from it.

Config sections are those of ``calico-train`` (``model``, ``data``, ``train``); ``model`` takes
``size`` (``full``: LISA-7B / GLaMM-7B; ``tiny``: a few-MB model with random frozen parts for tests),
``overrides`` (:func:`baselines.multi_image_llava.baseline_config` keywords), ``tokenizer`` (a folder;
default the ``checkpoint`` folder, or for ``tiny`` a small BPE trained on the training texts),
``checkpoint`` (the official LISA-7B-v1 / GLaMM-GranD-Pretrained file or folder) and ``clip`` (a
transformers CLIP checkpoint when the official one lacks the tower). The result, ``FOLDER/final``,
runs with ``mixedparts-baseline lisa|glamm --model FOLDER/final``; with an official checkpoint only the
trained parts are saved and the frozen base is read again from the recorded checkpoint paths.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

RECIPE = {  # both repositories' train_ds.py defaults (LISA; GLaMM's train.py keeps them): bf16 DeepSpeed with
    # gradient checkpointing (--precision bf16, model.gradient_checkpointing_enable())
    "lr": 3e-4, "betas": [0.9, 0.95], "weight_decay": 0.0, "warmup_steps": 100, "max_steps": 5000,
    "batch_size": 2, "grad_accum": 10, "max_grad_norm": 1.0, "save_every": 500,
    "mixed_precision": "bf16", "gradient_checkpointing": True,
}
MODEL_MAX_LENGTH = {  # GLaMM train.py's default (two 576-token images overflow 1024); LISA's 512 cannot hold two
    "glamm": 1536, "lisa": 1024}  # 256-token images and the text, and its LLM has 2048 positions
TINY_CLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
             "image_size": 28, "patch_size": 14}


def load_config(system: str, path=None, overrides=(), data=None, out=None) -> dict:
    """calico-train's defaults with this recipe, a YAML file merged over them, ``section.key=value`` overrides."""
    from calico_baseline.train import DEFAULTS
    from calico_baseline.train import load_config as load_calico_config

    defaults = copy.deepcopy(DEFAULTS)
    defaults["model"] = {"system": system, "size": "full", "overrides": {}, "tokenizer": None, "checkpoint": None,
                         "clip": None, "dtype": None, "trainable_dtype": "fp32"}
    defaults["train"].update(RECIPE, output_dir=f"runs/{system}")
    defaults["data"]["max_length"] = MODEL_MAX_LENGTH[system]
    config = load_calico_config(path, list(overrides), defaults=defaults)
    config["model"]["system"] = system
    if data is not None:
        config["data"]["path"] = str(data)
    if out is not None:
        config["train"]["output_dir"] = str(out)
    return config


def build_model_and_tokenizer(config: dict, rows: list[dict]):
    """(MultiImageLlavaForCausalLM, tokenizer) for ``config['model']``, official weights loaded when named.

    With a checkpoint the sizes come from its files (:func:`~baselines.multi_image_llava.sizes_from_official`),
    the tokenizer gains the grounding tokens it lacks (LISA's: ``<p>``, ``</p>``) and the vocabulary rows grow
    to match; ``model.dtype`` (default bf16 for a full-size model, as both repositories load it) builds on the
    meta device and loads each shard straight into that dtype, the trained parameters in ``trainable_dtype``."""
    from transformers import AutoTokenizer

    from baselines.multi_image_llava import MultiImageLlavaForCausalLM, baseline_config, build_official
    from calico_baseline.checkpoints import report_line
    from calico_baseline.config import calico_tiny
    from calico_baseline.train import torch_dtype
    from calico_baseline.tokenization import (add_grounding_tokens, build_tiny_tokenizer, check_tokenizer,
                                              config_overrides)

    m = config["model"]
    system, size = m["system"], m.get("size", "full")
    if size not in ("full", "tiny"):
        raise ValueError(f"model.size must be 'full' or 'tiny', got {size!r}")
    tokenizer_path = m.get("tokenizer") or m.get("checkpoint")
    if tokenizer_path and Path(tokenizer_path).is_dir():
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        add_grounding_tokens(tokenizer)
    elif size == "tiny":
        tokenizer = build_tiny_tokenizer([r["question"] for r in rows] + [r["answer"] for r in rows])
    else:
        raise ValueError("model.tokenizer (or a checkpoint folder holding the tokenizer) is needed")
    check_tokenizer(tokenizer)
    tok = config_overrides(tokenizer)
    overrides = copy.deepcopy(m.get("overrides") or {})
    if size == "tiny":
        tiny = calico_tiny().to_dict()
        overrides.setdefault("vision_config", {})
        overrides["vision_config"] = {**TINY_CLIP, **overrides["vision_config"]}
        overrides["sam_config"] = {**tiny["sam_config"], **overrides.get("sam_config", {})}
        overrides["text_config"] = {**tiny["text_config"], **tok.pop("text_config"),
                                    **overrides.get("text_config", {})}
        overrides.setdefault("lora_dropout", 0.0)
        for key, value in tok.items():
            overrides.setdefault(key, value)
    dtype_name = m.get("dtype") or ("bf16" if size == "full" else None)
    dtype = torch_dtype(dtype_name) if dtype_name else None
    trainable_dtype = torch_dtype(m.get("trainable_dtype") or "fp32")
    if m.get("checkpoint"):  # full size: the files give every size, the tokenizer the vocabulary and its ids
        model, report = build_official(system, m["checkpoint"], m.get("clip"), tokenizer, dtype=dtype,
                                       trainable_dtype=trainable_dtype, **overrides)
        print(report_line(report), file=sys.stderr)
        return model, tokenizer
    if size == "full":
        raise ValueError("model.checkpoint is needed for a full-size model (the official "
                         + ("LISA-7B-v1" if system == "lisa" else "GLaMM-GranD-Pretrained") + " weights)")
    model = MultiImageLlavaForCausalLM(baseline_config(system, **overrides))
    if dtype is not None:
        model.to(dtype)
        for param in model.trainable_parameters().values():
            param.data = param.data.to(trainable_dtype)
    return model, tokenizer


def train(config: dict, resume: bool = False) -> Path:
    """calico-train's own loop (accelerate, schedule, checkpoints, resume) with this system's model."""
    from calico_baseline.train import train as calico_train

    return calico_train(config, resume=resume, build_model=build_model_and_tokenizer)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=["lisa", "glamm"], help="the system to fine-tune")
    parser.add_argument("--data", required=True, metavar="DIR", help="a built MixedParts dataset folder")
    parser.add_argument("--out", required=True, metavar="FOLDER",
                        help="output folder (checkpoints/, final/, train_config.json)")
    parser.add_argument("--config", metavar="YAML", help="calico-train style config (sections model, data, train)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set train.max_steps=10 --set model.size=tiny")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in FOLDER")


def main(args: argparse.Namespace) -> int:
    from baselines.errors import BaselineError

    try:
        config = load_config(args.name, args.config, args.set, data=args.data, out=args.out)
        final = train(config, resume=args.resume)
    except (OSError, ValueError, BaselineError) as error:
        print(f"mixedparts-baseline train {args.name}: error: {error}", file=sys.stderr)
        return 2
    print(f"saved the fine-tuned {args.name} model to {final}; run it with "
          f"mixedparts-baseline {args.name} --model {final} --data DIR --out predictions.json")
    return 0
