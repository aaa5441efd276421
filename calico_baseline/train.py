"""``calico-train --config configs/….yaml``: train Calico on MixedParts with Hugging Face accelerate.

DDP / FSDP / DeepSpeed come from the accelerate config (``accelerate launch --config_file …``);
AdamW (β 0.9/0.95, wd 0), linear warm-up then linear decay to 0, gradient clipping, accumulation,
mixed precision, gradient checkpointing, periodic checkpoints (the *trained* parameters as save_pretrained writes them, plus
``accelerator.save_state``: optimizer — sharded under FSDP / ZeRO-2 —, scheduler, RNG, data position), exact
resume (``--resume``), console + tensorboard logging, progress bar. ``model.dtype: bf16`` with base checkpoints builds
the model on the meta device and loads the checkpoints straight into bf16 (no fp32 copy of the full model).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

DEFAULTS = {
    "model": {"preset": None, "overrides": {}, "tokenizer": None, "base_checkpoints": {},
              "dtype": None, "trainable_dtype": "fp32"},
    "data": {"path": None, "split": "train", "image_roots": {}, "limit": None, "max_length": 1024,
             "val_split": "val", "val_samples": 64, "train_eval_samples": 0,
             "look_answer": "objects_and_parts", "look_mix": 0.0},
    "train": {"output_dir": "runs/calico", "lr": 4e-4, "betas": [0.9, 0.95], "weight_decay": 0.0,
              "warmup_steps": 100, "max_steps": 5000, "batch_size": 2, "grad_accum": 10, "max_grad_norm": 1.0,
              "mixed_precision": "no", "gradient_checkpointing": False, "save_every": 500, "log_every": 10,
              "seed": 0, "num_workers": 0, "tensorboard": True, "cpu": False, "progress": True,
              "val_every": 0, "threads": None, "lr_scale": {}, "look_steps": 0, "adamw_kernel": "default"},
}


def load_config(path: str | Path | None, overrides: list[str] = (), defaults: dict | None = None) -> dict:
    """YAML (or JSON) config merged over ``defaults`` (DEFAULTS); ``section.key=value`` overrides (YAML-parsed)."""
    import yaml

    config = copy.deepcopy(defaults if defaults is not None else DEFAULTS)
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        for section, values in loaded.items():
            if section not in config:
                raise ValueError(f"{path}: unknown section {section!r}; expected {sorted(config)}")
            config[section].update(values or {})
    for item in overrides:
        key, _, value = item.partition("=")
        section, *path = key.split(".")
        if section not in config or not path or not all(path):
            raise ValueError(f"override {item!r} must look like section.key=value")
        # section.key.subkey=value sets one entry of a nested mapping (model.overrides.mask_loss=bce), which a
        # flat "key.subkey" entry would not: nothing reads it, so the run would silently go without it
        target = config[section]
        for name in path[:-1]:
            if target.get(name) is None:
                target[name] = {}
            if not isinstance(target[name], dict):
                raise ValueError(f"override {item!r}: {name!r} is {target[name]!r}, not a mapping")
            target = target[name]
        target[path[-1]] = yaml.safe_load(value)
    if config.get("train", {}).get("mixed_precision") is False:  # YAML reads a bare `no` as false
        config["train"]["mixed_precision"] = "no"
    return config


def lr_lambda(warmup: int, total: int, look_steps: int = 0):
    """WarmupDecayLR of GLaMM/LISA: linear 0→1 over ``warmup`` steps, then linear 1→0 at ``total``. With
    ``look_steps`` the look stage has that schedule over its own steps and the task (``total`` steps) starts it
    again after them, as two LLaVA stages would."""
    def factor(step: int) -> float:
        if step < look_steps:
            return stage(step, look_steps)
        return stage(step - look_steps, total)

    def stage(step: int, steps: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (steps - step) / max(1, steps - warmup))
    return factor


def parameter_groups(model, lr: float, lr_scale: dict[str, float] | None) -> list[dict]:
    """AdamW groups of the trainable parameters: those under a module named in ``lr_scale`` (``{module path:
    factor}``, the longest matching path wins) train at ``lr × factor``, the rest at ``lr``. The default group
    comes first. A path that names no module of the model is a config error; one whose module is frozen has no
    effect."""
    from mixedparts.errors import MixedPartsError

    if not isinstance(lr_scale or {}, dict):
        raise MixedPartsError(f"train.lr_scale must map module paths to factors, got {lr_scale!r}")
    bad = {k: v for k, v in (lr_scale or {}).items() if isinstance(v, bool) or not isinstance(v, (int, float))}
    if bad:  # YAML reads `{a:5}` (no space) as the key "a:5" with no value
        raise MixedPartsError(f"train.lr_scale: {bad!r} is not a number (write `{{module: factor}}`)")
    scales = {str(k): float(v) for k, v in (lr_scale or {}).items()}
    every = [name for name, _ in model.named_parameters()]
    for prefix in scales:  # a frozen module is fine (an override may freeze it), a misspelt one is not
        if not any(name == prefix or name.startswith(prefix + ".") for name in every):
            raise MixedPartsError(f"train.lr_scale: {prefix!r} names no parameters of the model")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    by_length = sorted(scales, key=len, reverse=True)
    grouped: dict[float, list] = {1.0: []}
    for name, param in named:
        prefix = next((k for k in by_length if name == k or name.startswith(k + ".")), None)
        grouped.setdefault(scales[prefix] if prefix else 1.0, []).append(param)
    return [{"params": params, "lr": lr * factor, "lr_scale": factor} for factor, params in grouped.items() if params]


ADAMW_KERNELS = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def adamw_kernel(name: str | None) -> dict:
    """AdamW's implementation (``train.adamw_kernel``): the same update, other float rounding. ``default`` is torch's
    choice (one parameter at a time on CPU); ``fused`` does every parameter in one kernel, which on CPU cut
    calico-tiny's optimizer step ~4x (docs/model.md, "Round six")."""
    kernel = ADAMW_KERNELS.get(name or "default")
    if kernel is None:
        raise ValueError(f"train.adamw_kernel: {name!r} is not one of {sorted(ADAMW_KERNELS)}")
    return kernel


def build_model_and_tokenizer(config: dict, rows: list[dict]):
    """The model ``config['model']`` describes. Sizes come from the named checkpoint folders' own config.json
    files (and SAM's weight shapes); the preset (``calico-7b`` when checkpoints are named and no preset is,
    else ``calico-tiny``) fills only what they do not say; ``overrides`` come next, then the tokenizer's vocabulary
    size and special-token ids."""
    import torch
    from transformers import AutoTokenizer

    from calico_baseline.checkpoints import report_line, sizes_from_checkpoints
    from calico_baseline.config import layered, preset
    from calico_baseline.modeling import CalicoForCausalLM
    from calico_baseline.tokenization import (add_grounding_tokens, build_tiny_tokenizer, check_tokenizer,
                                              config_overrides)

    m = config["model"]
    if m["tokenizer"]:
        tokenizer = AutoTokenizer.from_pretrained(m["tokenizer"])
        add_grounding_tokens(tokenizer)
    else:  # calico-tiny: a small BPE trained on the training texts
        tokenizer = build_tiny_tokenizer([r["question"] for r in rows] + [r["answer"] for r in rows])
    check_tokenizer(tokenizer)
    bases = {k: str(v) for k, v in (m["base_checkpoints"] or {}).items() if v}
    sizes = sizes_from_checkpoints(bases)
    tok = config_overrides(tokenizer)
    if m["tokenizer"]:  # a published tokenizer: the checkpoint's vocabulary, grown if tokens were added
        vocab = sizes.get("text_config", {}).get("vocab_size", 0)
        tok["text_config"]["vocab_size"] = max(vocab, len(tokenizer))
    name = m.get("preset") or ("calico-7b" if bases else "calico-tiny")
    settings = layered(sizes, m["overrides"] or {}, tok)  # the tokenizer has the last word on vocabulary and ids
    model_config = preset(name, base_checkpoints=bases, **settings)
    dtype = torch_dtype(m.get("dtype") or "fp32")
    if bases and m.get("dtype"):  # low memory: meta device, checkpoints loaded straight into dtype
        model, report = CalicoForCausalLM.from_base_checkpoints(
            model_config, dtype=dtype, trainable_dtype=torch_dtype(m.get("trainable_dtype") or "fp32"))
        print(report_line(report), file=sys.stderr)
        return model, tokenizer
    model = CalicoForCausalLM(model_config)
    if bases:
        print(report_line(model.load_base_checkpoints()), file=sys.stderr)
    if dtype != torch.float32:
        model.to(dtype)
        for param in model.trainable_parameters().values():
            param.data = param.data.to(torch_dtype(m.get("trainable_dtype") or "fp32"))
    return model, tokenizer


# Names, not torch dtypes: importing torch at module level would make `calico-train --help` take seconds.
DTYPE_NAMES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
               "fp16": "float16", "float16": "float16"}


def torch_dtype(name: str):
    import torch

    return getattr(torch, DTYPE_NAMES[name])


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = sorted((output_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def train(config: dict, resume: bool = False, build_model=None) -> Path:
    """Train from ``config``; ``build_model(config, rows) -> (model, tokenizer)`` lets other systems built
    from Calico's blocks (Multi-Image LISA/GLaMM in ``baselines``) reuse this loop unchanged."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from tqdm import tqdm

    from calico_baseline.checkpoints import trained_state_dict
    from calico_baseline.curves import TRAIN_SUBSET, MetricsLog
    from calico_baseline.data import CalicoProcessor, read_rows
    from calico_baseline.validation import train_subset_validator_for, validator_for

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
    if t.get("threads"):
        torch.set_num_threads(int(t["threads"]))
    rows = read_rows(d["path"], d["split"], d["limit"])
    model, tokenizer = (build_model or build_model_and_tokenizer)(config, rows)
    accelerator.print(model.trainable_summary())
    if t["gradient_checkpointing"]:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    processor = CalicoProcessor(tokenizer, model.config, d["max_length"])
    dataset, look = training_datasets(config, rows, processor)
    look_steps = int(t.get("look_steps") or 0)
    total_steps = look_steps + t["max_steps"]
    generator = torch.Generator().manual_seed(t["seed"])

    def loader_of(data):
        return torch.utils.data.DataLoader(data, batch_size=t["batch_size"], shuffle=True, generator=generator,
                                           collate_fn=processor.collate, num_workers=t["num_workers"])

    loader = loader_of(dataset)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = parameter_groups(model, t["lr"], t.get("lr_scale"))
    optimizer = torch.optim.AdamW(groups, lr=t["lr"], betas=tuple(t["betas"]), weight_decay=t["weight_decay"],
                                  **adamw_kernel(t.get("adamw_kernel")))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(t["warmup_steps"], t["max_steps"], look_steps))
    trained_names = set(trained_state_dict(model))  # names as the unwrapped model has them
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    look_loader = accelerator.prepare(loader_of(look)) if look_steps else None
    if accelerator.distributed_type.value == "DEEPSPEED" and accelerator.mixed_precision == "bf16":
        accelerator.print("DeepSpeed bf16: the module (trained weights too) runs in bf16; the trained weights' fp32 "
                          "master copy is kept by ZeRO's optimizer")
    progress = TrainerState(generator)
    # the scheduler is registered, not prepared: a prepared one would step once per process
    accelerator.register_for_checkpointing(scheduler, progress)
    accelerator.register_save_state_pre_hook(keep_trained_weights(trained_names))
    step, epoch, skip = 0, 0, 0
    if resume and (ckpt := latest_checkpoint(out)) is not None:
        load_checkpoint(accelerator, ckpt)
        step, epoch, skip = progress.step, progress.epoch, progress.batches_in_epoch
        accelerator.print(f"resumed from {ckpt} at step {step}")
    if log_with:
        accelerator.init_trackers("calico", config={k: str(v) for k, v in t.items()})
    validator = validator_for(config, processor, accelerator.print) if t.get("val_every") else None
    fit_validator = train_subset_validator_for(config, rows, processor) if t.get("val_every") else None
    metrics = MetricsLog(out, resume_step=step if step else None) if accelerator.is_main_process else None

    def record(phase: str, values: dict) -> None:
        head = f"step {step}:" if phase == "train" else f"step {step} {phase}:"
        accelerator.print(head + " " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
        accelerator.log({f"{phase}/{k}": v for k, v in values.items()}, step=step)
        if metrics is not None:
            metrics.write(phase, step, values)

    def validate() -> None:
        record("val", validator(model, accelerator.device))
        if fit_validator is not None:
            record(TRAIN_SUBSET, fit_validator(model, accelerator.device))

    if validator is not None and step == 0:
        validate()  # the untrained model: where the curve starts
    model.train()
    bar = tqdm(total=total_steps, initial=step, desc="calico-train",
               disable=not (t["progress"] and accelerator.is_main_process))
    totals, samples, started = {}, 0, time.time()
    while step < total_steps:
        epoch_generator_state = generator.get_state()
        # epoch and skip count the batches of the stage's own loader; the stage's first step starts them at 0
        current = look_loader if step < look_steps else loader
        batches = accelerator.skip_first_batches(current, skip) if skip else current
        for index, batch in enumerate(batches, start=skip):
            with accelerator.accumulate(model):
                output = model(**batch, full_size_masks=False)  # nothing here reads them
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
            if step % t["log_every"] == 0 or step in (look_steps, total_steps):
                logs = {k: v / totals["n"] for k, v in totals.items() if k != "n"}
                logs.update(lr=scheduler.get_last_lr()[0] / groups[0]["lr_scale"],
                            samples_per_s=samples / (time.time() - started))
                record("train", logs)
                totals, samples, started = {}, 0, time.time()
            look_ends = step == look_steps
            if look_ends:  # the task (or a resume into it) starts its own loader from its first batch
                epoch, index, epoch_generator_state = 0, -1, generator.get_state()
            if validator is not None and (step % t["val_every"] == 0 or look_ends or step == total_steps):
                validate()
                started = time.time()  # samples_per_s measures training only
            if step % t["save_every"] == 0 or look_ends or step == total_steps:
                progress.update(step=step, epoch=epoch, batches_in_epoch=index + 1,
                                generator_state=epoch_generator_state)
                save_checkpoint(accelerator, model, tokenizer, out / "checkpoints" / f"step-{step}")
            if look_ends or step >= total_steps:
                skip = 0
                break
        else:
            epoch, skip = epoch + 1, 0
            continue
        if step >= total_steps:
            break
    bar.close()
    final = out / "final"
    state = accelerator.get_state_dict(model)  # on every rank: gathers the full weights under FSDP / ZeRO-3
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(final, state_dict=state)
        tokenizer.save_pretrained(final)
        (out / "train_config.json").write_text(json.dumps(config, indent=2, default=str))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final


def training_datasets(config: dict, rows: list[dict], processor):
    """(the task's dataset, the look stage's or ``None``): the rows as they are and, when ``train.look_steps`` or
    ``data.look_mix`` asks for them, re-asked as :mod:`calico_baseline.look` rows; with ``data.look_mix`` the
    task's dataset also holds that share of look samples."""
    from calico_baseline.data import CalicoDataset, image_roots_for
    from calico_baseline.look import MixedDataset, look_rows

    d, t = config["data"], config["train"]
    roots = image_roots_for(d["path"], d["image_roots"])
    task = CalicoDataset(rows, processor, roots)
    mix = float(d.get("look_mix") or 0.0)
    if not (t.get("look_steps") or mix):
        return task, None
    look = CalicoDataset(look_rows(rows, d.get("look_answer") or "objects_and_parts"), processor, roots)
    return (MixedDataset(task, look, mix, t["seed"]) if mix else task), look


class TrainerState:
    """Where training stands, saved with ``accelerator.save_state``: optimiser steps, epoch, batches of the epoch
    already consumed, and the shuffling generator's state at the start of that epoch (for exact resume)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator
        self.step = self.epoch = self.batches_in_epoch = 0
        self.generator_state = generator.get_state()

    def update(self, **values) -> None:
        for key, value in values.items():
            setattr(self, key, value)

    def state_dict(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch,
                "generator": self.generator_state}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.batches_in_epoch = state["step"], state["epoch"], state["batches_in_epoch"]
        self.generator_state = state["generator"]
        self.generator.set_state(self.generator_state)


def keep_trained_weights(trained_names: set[str]):
    """``save_state`` pre-hook: write only the trained weights of the model (the frozen base comes from the base
    checkpoints). Applies where accelerate hands the state dicts over (single process, DDP); FSDP and DeepSpeed
    write their own (sharded) files, DeepSpeed without the frozen parameters (``exclude_frozen_parameters``)."""
    def hook(models, weights, output_dir):
        for i, state in enumerate(weights):
            weights[i] = {k: v for k, v in state.items() if k.removeprefix("module.") in trained_names}
    return hook


STATE_DIR = "accelerate_state"


def save_checkpoint(accelerator, model, tokenizer, path: Path) -> None:
    """``path/``: the trained parts as ``save_pretrained`` writes them (usable by ``calico-predict``), and
    ``path/accelerate_state/``: ``accelerator.save_state`` — model, optimizer (sharded under FSDP / ZeRO),
    scheduler, RNG of every process and the :class:`TrainerState` — for exact resume."""
    from accelerate.utils import DistributedType

    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)  # collective under FSDP / ZeRO-3
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(path, state_dict=state)
        tokenizer.save_pretrained(path)
    del state
    kwargs = {"exclude_frozen_parameters": True} if accelerator.distributed_type == DistributedType.DEEPSPEED else {}
    accelerator.save_state(str(path / STATE_DIR), **kwargs)
    accelerator.wait_for_everyone()


def load_checkpoint(accelerator, path: Path) -> None:
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    kwargs = ({"load_module_strict": False} if kind == DistributedType.DEEPSPEED
              else {} if kind == DistributedType.FSDP else {"strict": False})
    accelerator.load_state(str(path / STATE_DIR), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calico-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (sections model, data, train; see configs/)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set train.max_steps=10")
    parser.add_argument("--plot", metavar="RUN", help="draw RUN/metrics.jsonl (a training run's output_dir) to a PNG "
                        "and exit: train and val losses, val mask IoU, val label and token accuracy")
    parser.add_argument("--plot-out", metavar="PNG", help="where --plot writes (default RUN/curves.png)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from mixedparts.errors import run_guarded

    return run_guarded(_run, build_parser().parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    from mixedparts.errors import MixedPartsError

    if args.plot:
        return _plot(args.plot, args.plot_out)
    if args.config and not Path(args.config).is_file():
        raise MixedPartsError(f"{args.config}: config file not found")
    try:
        config = load_config(args.config, args.set)
        adamw_kernel(config["train"].get("adamw_kernel"))  # refused before the data and the model are loaded
    except ValueError as error:  # an unknown section or a malformed --set
        raise MixedPartsError(str(error)) from None
    if not config["data"]["path"]:
        raise MixedPartsError("data.path is not set (the built MixedParts dataset folder)")
    final = train(config, resume=args.resume)
    print(f"saved the trained model to {final}")
    return 0


def _plot(run: str, out: str | None) -> int:
    from calico_baseline.curves import METRICS_FILE, plot_run
    from mixedparts.errors import MixedPartsError

    path = Path(run)
    if not (path / METRICS_FILE).is_file() and not (path.is_file() and path.suffix == ".jsonl"):
        raise MixedPartsError(f"{run}: no {METRICS_FILE} (pass the output_dir of a calico-train run)")
    try:
        picture = plot_run(path, out, title=path.resolve().name)
    except ValueError as error:
        raise MixedPartsError(str(error)) from None
    print(f"wrote {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
