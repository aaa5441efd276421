"""``calico-train --config configs/….yaml``: train Calico on MixedParts with Hugging Face accelerate.

DDP / FSDP / DeepSpeed come from the accelerate config (``accelerate launch --config_file …``);
AdamW (β 0.9/0.95, wd 0), linear warm-up then linear decay to 0, gradient clipping, accumulation,
mixed precision, gradient checkpointing, periodic checkpoints of the *trained* parameters plus
optimizer/scheduler/RNG state, exact resume (``--resume``), console + tensorboard logging, progress bar.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

DEFAULTS = {
    "model": {"preset": "calico-tiny", "overrides": {}, "tokenizer": None, "base_checkpoints": {}},
    "data": {"path": None, "split": "train", "image_roots": {}, "limit": None, "max_length": 1024},
    "train": {"output_dir": "runs/calico", "lr": 4e-4, "betas": [0.9, 0.95], "weight_decay": 0.0,
              "warmup_steps": 100, "max_steps": 5000, "batch_size": 2, "grad_accum": 10, "max_grad_norm": 1.0,
              "mixed_precision": "no", "gradient_checkpointing": False, "save_every": 500, "log_every": 10,
              "seed": 0, "num_workers": 0, "tensorboard": True, "cpu": False, "progress": True},
}


def load_config(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """YAML (or JSON) config merged over DEFAULTS; ``section.key=value`` overrides (YAML-parsed values)."""
    import yaml

    config = copy.deepcopy(DEFAULTS)
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        for section, values in loaded.items():
            if section not in config:
                raise ValueError(f"{path}: unknown section {section!r}; expected {sorted(config)}")
            config[section].update(values or {})
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if section not in config or not name:
            raise ValueError(f"override {item!r} must look like section.key=value")
        config[section][name] = yaml.safe_load(value)
    return config


def lr_lambda(warmup: int, total: int):
    """WarmupDecayLR of GLaMM/LISA: linear 0→1 over ``warmup`` steps, then linear 1→0 at ``total``."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def build_model_and_tokenizer(config: dict, rows: list[dict]):
    from transformers import AutoTokenizer

    from calico_baseline.checkpoints import load_base_checkpoints
    from calico_baseline.config import preset
    from calico_baseline.modeling import CalicoForCausalLM
    from calico_baseline.tokenization import build_tiny_tokenizer, check_tokenizer, config_overrides

    m = config["model"]
    if m["tokenizer"]:
        tokenizer = AutoTokenizer.from_pretrained(m["tokenizer"])
    else:  # calico-tiny: a small BPE trained on the training texts
        tokenizer = build_tiny_tokenizer([r["question"] for r in rows] + [r["answer"] for r in rows])
    check_tokenizer(tokenizer)
    overrides = dict(m["overrides"])
    if not m["tokenizer"]:
        tok = config_overrides(tokenizer)
        overrides["text_config"] = {**overrides.get("text_config", {}), **tok.pop("text_config")}
        overrides.update(tok)
    else:
        overrides.setdefault("seg_token_id", tokenizer.convert_tokens_to_ids("[SEG]"))
    bases = {k: v for k, v in (m["base_checkpoints"] or {}).items() if v}
    model_config = preset(m["preset"], base_checkpoints=bases, **overrides)
    model = CalicoForCausalLM(model_config)
    if bases:
        load_base_checkpoints(model, **bases)
    return model, tokenizer


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = sorted((output_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def train(config: dict, resume: bool = False) -> Path:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from tqdm import tqdm

    from calico_baseline.checkpoints import TRAINED_FILE, save_trained
    from calico_baseline.data import CalicoDataset, CalicoProcessor, image_roots_for, read_rows

    t, d = config["train"], config["data"]
    out = Path(t["output_dir"])
    log_with = None
    if t["tensorboard"]:
        try:
            import tensorboard  # noqa: F401
            log_with = "tensorboard"
        except ImportError:
            pass
    accelerator = Accelerator(gradient_accumulation_steps=t["grad_accum"], mixed_precision=t["mixed_precision"],
                              cpu=t["cpu"], log_with=log_with, project_dir=str(out),
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    set_seed(t["seed"])
    rows = read_rows(d["path"], d["split"], d["limit"])
    model, tokenizer = build_model_and_tokenizer(config, rows)
    accelerator.print(model.trainable_summary())
    if t["gradient_checkpointing"]:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    processor = CalicoProcessor(tokenizer, model.config, d["max_length"])
    dataset = CalicoDataset(rows, processor, image_roots_for(d["path"], d["image_roots"]))
    generator = torch.Generator().manual_seed(t["seed"])
    loader = torch.utils.data.DataLoader(dataset, batch_size=t["batch_size"], shuffle=True, generator=generator,
                                         collate_fn=processor.collate, num_workers=t["num_workers"])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t["lr"], betas=tuple(t["betas"]), weight_decay=t["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(t["warmup_steps"], t["max_steps"]))
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    step, epoch, skip = 0, 0, 0
    if resume and (ckpt := latest_checkpoint(out)) is not None:
        from safetensors.torch import load_file
        accelerator.unwrap_model(model).load_state_dict(load_file(str(ckpt / TRAINED_FILE)), strict=False)
        state = torch.load(ckpt / "trainer_state.pt", map_location="cpu", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, skip = state["step"], state["epoch"], state["batches_in_epoch"]
        generator.set_state(state["generator"])
        set_rng_state(state["rng"])
        accelerator.print(f"resumed from {ckpt} at step {step}")
    if log_with:
        accelerator.init_trackers("calico", config={k: str(v) for k, v in t.items()})
    model.train()
    bar = tqdm(total=t["max_steps"], initial=step, desc="calico-train",
               disable=not (t["progress"] and accelerator.is_main_process))
    totals, samples, started = {}, 0, time.time()
    while step < t["max_steps"]:
        epoch_generator_state = generator.get_state()
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        for index, batch in enumerate(batches, start=skip):
            with accelerator.accumulate(model):
                output = model(**batch)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients and t["max_grad_norm"]:
                    accelerator.clip_grad_norm_(params, t["max_grad_norm"])
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad()
            for key in ("loss", "ce_loss", "mask_loss", "dice_loss"):
                totals[key] = totals.get(key, 0.0) + float(getattr(output, key).detach())
            totals["n"] = totals.get("n", 0) + 1
            samples += len(batch["sample_ids"]) * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            step += 1
            bar.update(1)
            if step % t["log_every"] == 0 or step == t["max_steps"]:
                logs = {k: v / totals["n"] for k, v in totals.items() if k != "n"}
                logs.update(lr=scheduler.get_last_lr()[0], samples_per_s=samples / (time.time() - started))
                accelerator.print(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in logs.items()))
                accelerator.log(logs, step=step)
                totals, samples, started = {}, 0, time.time()
            if step % t["save_every"] == 0 or step == t["max_steps"]:
                save_checkpoint(accelerator, model, tokenizer, optimizer, scheduler, out / "checkpoints" / f"step-{step}",
                                step=step, epoch=epoch, batches_in_epoch=index + 1, generator=epoch_generator_state)
            if step >= t["max_steps"]:
                break
        else:
            epoch, skip = epoch + 1, 0
            continue
        break
    bar.close()
    final = out / "final"
    if accelerator.is_main_process:
        save_trained(accelerator.unwrap_model(model), final, tokenizer)
        (out / "train_config.json").write_text(json.dumps(config, indent=2, default=str))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final


def save_checkpoint(accelerator, model, tokenizer, optimizer, scheduler, path: Path, **state) -> None:
    from calico_baseline.checkpoints import save_trained

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_trained(accelerator.unwrap_model(model), path, tokenizer)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
                    **state}, path / "trainer_state.pt")
    accelerator.wait_for_everyone()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calico-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (sections model, data, train; see configs/)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set train.max_steps=10")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config(args.config, args.set)
    if not config["data"]["path"]:
        print("calico-train: data.path is not set (the built MixedParts dataset folder)", file=sys.stderr)
        return 2
    final = train(config, resume=args.resume)
    print(f"saved the trained model to {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
