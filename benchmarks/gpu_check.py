"""GPU check: Calico, Multi-Image GLaMM and Multi-Image LISA at full size, random-initialised, bf16, on one GPU.

For one two-image sample it measures, per model: peak GPU memory, prefill latency (the prompt through the
vision path and the LLM, KV cache filled) and generation latency (greedy, KV cache, ``--new-tokens`` new
tokens, EOS ignored so every run generates the same count); and for Calico the time and loss of
``--steps`` training steps (LoRA + CEM + CAMs + mask decoder in fp32 under bf16 autocast, the frozen rest in
bf16, gradient checkpointing, AdamW). No weights are needed: the point is memory and speed, not answers.

Run on a GPU machine: ``python benchmarks/gpu_check.py`` (about 3–6 minutes on one 80 GB+ GPU).
Without a GPU (or with ``--size tiny``) the same code runs at the tiny sizes on CPU; a test does that so the
script cannot rot. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, function):
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def configs(size: str, tokenizer) -> dict:
    """name -> (model class, config) at ``size`` (``full``: the paper's sizes; ``tiny``: a few MB)."""
    from baselines.multi_image_llava import MultiImageLlavaForCausalLM, baseline_config
    from baselines.train import TINY_CLIP
    from calico_baseline.config import calico_tiny, preset
    from calico_baseline.modeling import CalicoForCausalLM

    seg = tokenizer.convert_tokens_to_ids("[SEG]")
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    if size == "full":  # the published vocabulary (32007); the small tokenizer's ids are a subset of it
        return {"Calico": (CalicoForCausalLM, preset("calico-7b", seg_token_id=seg)),
                "Multi-Image GLaMM": (MultiImageLlavaForCausalLM, baseline_config("glamm", seg_token_id=seg)),
                "Multi-Image LISA": (MultiImageLlavaForCausalLM, baseline_config("lisa", seg_token_id=seg))}
    tiny = calico_tiny(text_config={"vocab_size": len(tokenizer), **ids}, seg_token_id=seg)
    small = tiny.to_dict()
    baseline = {"vision_config": TINY_CLIP, "text_config": small["text_config"], "sam_config": small["sam_config"],
                "seg_token_id": seg, "lora_dropout": 0.0}
    return {"Calico": (CalicoForCausalLM, tiny),
            "Multi-Image GLaMM": (MultiImageLlavaForCausalLM, baseline_config("glamm", **baseline)),
            "Multi-Image LISA": (MultiImageLlavaForCausalLM, baseline_config("lisa", **baseline))}


def build(cls, config, device, dtype):
    """Random-initialised model straight on ``device`` in ``dtype``; trained parameters in fp32 (master weights)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = cls(config)
    finally:
        torch.set_default_dtype(previous)
    for param in model.trainable_parameters().values():
        param.data = param.data.float()
    return model


def to_device(batch: dict, device) -> dict:
    import torch

    def move(value):
        if torch.is_tensor(value):
            return value.to(device)
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    return {k: move(v) for k, v in batch.items()}


def peak_memory_gb(device):
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def measure_inference(model, processor, sample, device, dtype, new_tokens: int) -> dict:
    import torch

    from calico_baseline.generation import generate

    row, images = sample
    batch = to_device(processor.collate([processor(row, images, train=False)]), device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def prefill():
        with torch.no_grad(), autocast:
            embeds, context = model.prefill_inputs(batch)
            return model.run_llm(embeds, batch["attention_mask"], cam_context=context, use_cache=True)

    def decode():
        with autocast:  # eos -1: never stops early, so every model generates exactly new_tokens
            return generate(model, batch, new_tokens, eos_token_id=-1)

    prefill(), decode()  # warm-up (kernels, allocator)
    (_, prefill_s) = timed(device, prefill)
    ((tokens, _), generate_s) = timed(device, decode)
    return {"prompt_tokens": int(batch["input_ids"].shape[1]), "prefill_s": prefill_s, "generate_s": generate_s,
            "new_tokens": len(tokens[0]), "decode_tokens_per_s": len(tokens[0]) / max(generate_s - prefill_s, 1e-9)}


def measure_training(model, processor, sample, device, dtype, steps: int) -> dict:
    import torch

    row, images = sample
    batch = to_device(processor.collate([processor(row, images, train=True)]), device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=4e-4, betas=(0.9, 0.95), weight_decay=0.0)
    model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    losses, times = [], []
    for _ in range(steps):
        def step():
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                output = model(**batch)
            output.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return float(output.loss.detach())
        loss, seconds = timed(device, step)
        losses.append(loss)
        times.append(seconds)
    model.eval()
    later = times[1:] or times
    return {"train_steps": steps, "first_step_s": times[0], "step_s": sum(later) / len(later),
            "loss_first": losses[0], "loss_last": losses[-1]}


def run(size: str, device_name: str, steps: int, new_tokens: int) -> list[dict]:
    import torch

    from calico_baseline.data import CalicoProcessor
    from calico_baseline.testing import synthetic_sample
    from calico_baseline.tokenization import build_tiny_tokenizer

    device = torch.device(device_name)
    dtype = torch.bfloat16
    sizes = ((480, 640), (427, 640)) if size == "full" else ((48, 64), (40, 56))
    sample = synthetic_sample(0, sizes=sizes)
    tokenizer = build_tiny_tokenizer([sample[0]["question"], sample[0]["answer"]], vocab_size=400)
    results = []
    for name, (cls, config) in configs(size, tokenizer).items():
        torch.manual_seed(0)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model, build_s = timed(device, lambda: build(cls, config, device, dtype))
        model.eval()
        processor = CalicoProcessor(tokenizer, model.config, max_length=2048)
        result = {"model": name, "size": size, "device": str(device), "dtype": "bf16", "build_s": build_s,
                  "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
                  "visual_tokens_per_image": model.config.visual_tokens_per_image}
        result.update(measure_inference(model, processor, sample, device, dtype, new_tokens))
        result["peak_inference_gb"] = peak_memory_gb(device)
        if name == "Calico" and steps:
            result.update(measure_training(model, processor, sample, device, dtype, steps))
            result["peak_training_gb"] = peak_memory_gb(device)
        results.append(result)
        del model, processor
        gc.collect()
    return results


def table(results: list[dict]) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    head = f"{'model':<18} {'params M':>9} {'tok/img':>7} {'prompt':>6} {'peak GB':>8} {'prefill s':>9} " \
           f"{'gen s':>7} {'train GB':>8} {'step s':>7} {'loss 1st→last':>15}"
    lines = [head, "-" * len(head)]
    for r in results:
        loss = f"{r['loss_first']:.3f}→{r['loss_last']:.3f}" if "loss_first" in r else "-"
        lines.append(f"{r['model']:<18} {r['parameters_m']:>9.1f} {r['visual_tokens_per_image']:>7} "
                     f"{r['prompt_tokens']:>6} {fmt(r['peak_inference_gb'], '8.1f'):>8} {r['prefill_s']:>9.3f} "
                     f"{r['generate_s']:>7.2f} {fmt(r.get('peak_training_gb'), '8.1f'):>8} "
                     f"{fmt(r.get('step_s'), '7.3f'):>7} {loss:>15}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    cuda = torch.cuda.is_available()
    parser.add_argument("--size", choices=["full", "tiny"], default="full" if cuda else "tiny")
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--steps", type=int, default=20, help="Calico training steps")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per sample")
    args = parser.parse_args(argv)
    if args.size == "full" and not args.device.startswith("cuda"):
        print("gpu_check: full size needs a GPU (--device cuda); use --size tiny on CPU", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = run(args.size, args.device, args.steps, args.new_tokens)
    print(table(results))
    print(json.dumps({"benchmark": "gpu_check", "size": args.size, "device": args.device,
                      "wall_s": round(time.perf_counter() - started, 1), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
