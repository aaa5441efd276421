"""Calico against Multi-Image GLaMM and Multi-Image LISA, like for like: FLOPs of one whole answer, and CPU latency.

The three systems share the LLM (Vicuna-7B), the SAM ViT-H mask path and the prompt; only the visual path differs:

- Calico: EVA-CLIP ViT-g at 224 px → Q-Former, 32 tokens per image; DINOv2-g + CEM; Q-Former passes of 2 CAMs;
- MI-GLaMM: CLIP ViT-L/14 at 336 px → two-layer GELU projector, 576 tokens per image;
- MI-LISA: CLIP ViT-L/14 at 224 px → linear projector, 256 tokens per image
  (``baselines.multi_image_llava``, the configurations of the two repositories).

One answer of a two-image sample is counted whole: the vision path of both images, the LLM prefill over the
prompt (text + visual tokens), greedy decoding with the KV cache for the mean answer length of the split (one
token per step, attending to everything before it), the lm_head at every generated position, SAM's image
encoder on both images and its mask decoder once per ``[SEG]``. Counts come from
``torch.utils.flop_counter`` on the meta device (no weights, nothing allocated); a multiply-add is 2 FLOPs.

Text lengths come from ``--data DIR --split test``: the mean question and answer of the split, tokenized with
``--tokenizer PATH`` (a local GLaMM / Vicuna tokenizer folder) or, without one, estimated from the words
(see :func:`estimate_tokens`). Without ``--data`` the embedded tiny synthetic build is made in a temporary folder.

``--latency`` also times the three on this CPU with every width divided by 16 and every depth by 4 (32 LLM layers
→ 8, SAM ViT-H's 32 → 8, …) and the same sequence lengths (image sizes, visual-token counts, prompt and answer
length): vision, prefill, greedy generation with the KV cache and mask decoding, batch 1, fp32, timed in CPU
seconds of one thread (the latency on an idle core, whatever else the machine runs). At full depth a
cached decoding step and SAM's 1024-px encoder cost over half a minute each per answer on a shared 2-core machine,
so the run did not finish; the reduced stacks keep what separates the systems (the visual-token count in the
prefill and the KV cache, the extra DINOv2/CEM/CAM work of Calico) and finish in a few minutes. These are CPU
ratios of scaled-down models, not the paper's GPU measurement.
Run: ``python benchmarks/flops.py [--data DIR] [--latency]``; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from baselines.multi_image_llava import MultiImageLlavaForCausalLM, baseline_config  # noqa: E402
from calico_baseline.config import preset  # noqa: E402
from calico_baseline.modeling import CACHE_KWARG, CalicoForCausalLM  # noqa: E402
from calico_baseline.sam import decode_masks  # noqa: E402
from calico_baseline.tokenization import GROUNDING_TOKENS, prompt_text  # noqa: E402

PAPER_TFLOPS = -32.6  # Calico vs its baseline, TFLOPs (paper)
PAPER_SPEEDUP = 51.3  # "51.3% speedup in inference" (paper; baseline and definition not stated)
IMAGES = 2
SYSTEMS = ("Calico", "MI-GLaMM", "MI-LISA")
COMPONENTS = ("vision", "DINOv2+CEM", "Q-Former/projector", "CAM Q-Formers", "LLM prefill", "LLM decode",
              "SAM encoder", "SAM decoder")


# ---------------------------------------------------------------- configurations
def shallower(depth: int, depth_divisor: int) -> int:
    return max(1, depth // depth_divisor)


def layer_map(layers, depth: int, depth_divisor: int) -> list[int]:
    """Layer indices of a ``depth``-layer stack moved to the shallower one: the layer that closes the same share of
    the stack (CAM layers, SAM's global-attention layers; SAM's last layer stays the last)."""
    new = shallower(depth, depth_divisor)
    return sorted({max(0, (i + 1) * new // depth - 1) for i in layers})


def configs(width_divisor: int = 1, depth_divisor: int = 1) -> dict:
    """The three systems at full size, or with every width divided by ``width_divisor`` and every depth by
    ``depth_divisor`` (image sizes, patch sizes and token counts unchanged; head sizes kept where the width allows;
    CAM layers and SAM's global-attention layers at the same relative depth)."""
    calico, glamm, lisa = preset("calico-7b"), baseline_config("glamm"), baseline_config("lisa")
    if width_divisor == 1 and depth_divisor == 1:
        return {"Calico": calico, "MI-GLaMM": glamm, "MI-LISA": lisa}

    def narrow(section: dict, heads_key="num_attention_heads", width_key="hidden_size", ffn_key="intermediate_size"):
        out = dict(section)
        if "num_hidden_layers" in section:
            out["num_hidden_layers"] = shallower(section["num_hidden_layers"], depth_divisor)
        width = section[width_key] // width_divisor
        head = section[width_key] // section[heads_key]
        out[width_key] = width
        out[heads_key] = max(1, width // head)
        while out[width_key] % out[heads_key]:
            out[heads_key] -= 1
        if ffn_key in section:
            out[ffn_key] = max(1, section[ffn_key] // width_divisor)
        if "num_key_value_heads" in section:
            out["num_key_value_heads"] = out[heads_key]
        return out

    sam = dict(calico.sam_config)
    sam.update(encoder_embed_dim=sam["encoder_embed_dim"] // width_divisor,
               encoder_num_heads=max(1, sam["encoder_num_heads"] // width_divisor),
               prompt_embed_dim=sam["prompt_embed_dim"] // width_divisor,
               decoder_mlp_dim=sam["decoder_mlp_dim"] // width_divisor,
               decoder_num_heads=max(1, sam["decoder_num_heads"] // width_divisor),
               iou_head_hidden_dim=sam["iou_head_hidden_dim"] // width_divisor,
               encoder_depth=shallower(sam["encoder_depth"], depth_divisor),
               encoder_global_attn_indexes=layer_map(sam["encoder_global_attn_indexes"], sam["encoder_depth"],
                                                     depth_divisor))
    text = narrow(calico.text_config.to_dict())
    vision = narrow(calico.vision_config.to_dict())
    vision = {k: vision[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                     "image_size", "patch_size")}
    qformer = narrow(calico.qformer_config.to_dict())
    qformer = {k: qformer[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")}
    # Backbone stage names follow the depth; the narrowed config derives them again from its own.
    dino = narrow({k: v for k, v in calico.dino_config.to_dict().items()
                   if k not in ("stage_names", "out_features", "out_indices")})
    small_calico = preset("calico-7b", text_config=text, vision_config=vision, qformer_config=qformer,
                          dino_config=dino, sam_config=sam, cem_num_heads=max(1, vision["num_attention_heads"]),
                          cam_layers=layer_map(calico.cam_layers, calico.text_config.num_hidden_layers,
                                               depth_divisor))
    out = {"Calico": small_calico}
    for name, system in (("MI-GLaMM", "glamm"), ("MI-LISA", "lisa")):
        full = baseline_config(system)
        out[name] = baseline_config(system, text_config=text, vision_config=narrow(full.vision_config.to_dict()),
                                    sam_config=sam)
    return out


def build(name: str, config):
    return (CalicoForCausalLM if name == "Calico" else MultiImageLlavaForCausalLM)(config)


def vision_tokens(config) -> int:
    return config.visual_tokens_per_image  # patch tokens (CLS dropped) without the Q-Former


# ---------------------------------------------------------------- text lengths
SPECIAL = re.compile("|".join(re.escape(t) for t in GROUNDING_TOKENS))


def estimate_tokens(text: str) -> int:
    """LLaMA-tokenizer length estimated without the tokenizer: each grounding token (``[SEG]``, ``<p>``…) is one
    token (they are in GLaMM's vocabulary), each digit and punctuation mark one (LLaMA splits digits), a word of up
    to 6 letters one, a longer word two. Within a few per cent on these templated English sentences."""
    count = 0
    for piece in SPECIAL.split(text):
        for token in re.findall(r"[A-Za-z]+|\d|[^\sA-Za-z\d]", piece):
            count += 1 if not token.isalpha() or len(token) <= 6 else 2
    count += len(SPECIAL.findall(text))
    return count


def text_lengths(data: Path, split: str, tokenizer_path: str | None) -> dict:
    """Mean prompt text (system + image intro + question) and answer (+ EOS) lengths, and [SEG] count, of a split."""
    from calico_baseline.data import read_rows
    from mixedparts import markup

    rows = read_rows(data, split)
    if not rows:
        raise SystemExit(f"error: {data} has no {split!r} split")
    if tokenizer_path:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        how = f"tokenized with {tokenizer_path}"
    else:
        count, how = estimate_tokens, "estimated from the words (no --tokenizer given)"
    prompts = [count(prompt_text(r["question"], len(r["images"])).replace("<image>", "")) + 1 for r in rows]  # + BOS
    answers = [count(" " + r["answer"]) + 1 for r in rows]  # + EOS
    segs = [markup.seg_count(r["answer"]) for r in rows]
    return {"prompt": round(statistics.mean(prompts)), "answer": round(statistics.mean(answers)),
            "seg": statistics.mean(segs), "samples": len(rows), "how": how}


def demo_dataset() -> Path:
    """The tiny synthetic sources built into a temporary folder (the embedded default)."""
    from mixedparts.build import build as build_dataset
    from mixedparts.build.options import BuildOptions
    from mixedparts.sources import open_readers
    from mixedparts.synth import source_paths, synthesize

    root = Path(tempfile.mkdtemp(prefix="flops-"))
    synthesize(root / "sources", scale="tiny", seed=0)
    paths = source_paths(root / "sources")
    readers = open_readers(paco=paths["paco_lvis"], coco_images=paths["coco_images"],
                           partimagenet=paths["partimagenet"], ade20k_part234=paths["ade20k_part234"])
    build_dataset(readers, root / "dataset", BuildOptions(), workers=1, progress=False)
    return root / "dataset"


# ---------------------------------------------------------------- one answer, component by component
def answer_steps(model, lengths: dict, seg_per_image: list[int], device) -> dict:
    """Callables running each component of one whole answer (shared by the FLOP count and the timing)."""
    c = model.config
    size = c.vision_config.image_size
    pixels = torch.zeros(IMAGES, 3, size, size, device=device)
    sam_size = c.sam_config["image_size"]
    d_llm = c.text_config.hidden_size
    prompt = lengths["prompt"] + IMAGES * vision_tokens(c)
    state = {}

    def vision():
        state["features"] = model.visual.encode(pixels)

    def dino_cem():
        dino = model.dino(pixel_values=pixels).last_hidden_state
        state["cam_features"] = model.cem(state["features"], dino)

    def projector():
        state["tokens"] = model.visual.tokens(state["features"])

    def cams():
        queries = model.visual.query_tokens.expand(IMAGES, -1, -1)
        for _ in c.active_cam_layers:
            model.visual.run_qformer(queries, state["cam_features"])

    def prefill():
        embeds = torch.zeros(1, prompt, d_llm, device=device)
        out = model.llm.model(inputs_embeds=embeds, position_ids=torch.arange(prompt, device=device)[None],
                              use_cache=True)
        state["cache"] = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
        model.llm.lm_head(out.last_hidden_state[:, -1:])

    def decode():
        cache = state["cache"]
        embed = model.llm.get_input_embeddings()
        token = torch.zeros(1, 1, dtype=torch.long, device=device)
        for step in range(lengths["answer"] - 1):  # the first answer token came from the prefill's lm_head
            position = torch.tensor([[prompt + step]], device=device)
            out = model.llm.model(inputs_embeds=embed(token), position_ids=position, use_cache=True,
                                  **{CACHE_KWARG: cache})
            cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
            model.llm.lm_head(out.last_hidden_state)

    def sam_encoder():
        encoder = model.grounding_encoder.image_encoder
        state["sam"] = [encoder(torch.zeros(1, 3, sam_size, sam_size, device=device)) for _ in range(IMAGES)]

    def sam_decoder():
        for image, n in enumerate(seg_per_image):
            if n:
                prompts = model.seg_embeddings(torch.zeros(n, d_llm, device=device))
                decode_masks(model.grounding_encoder, state["sam"][image], prompts, (sam_size, sam_size),
                             (sam_size, sam_size))

    steps = {"vision": vision}
    if c.cem_enabled:
        steps["DINOv2+CEM"] = dino_cem
    steps["Q-Former/projector"] = projector
    if c.active_cam_layers:
        steps["CAM Q-Formers"] = cams
    steps.update({"LLM prefill": prefill, "LLM decode": decode, "SAM encoder": sam_encoder,
                  "SAM decoder": sam_decoder})
    return steps


def seg_split(segs: float) -> list[int]:
    """The mean [SEG] count of the split, rounded, spread over the two images."""
    n = round(segs)
    return [n - n // 2, n // 2]


def decode_step_flops(model, cache_length: int) -> float:
    """FLOPs of one cached greedy step (LLM + lm_head) after ``cache_length`` tokens."""
    d_llm = model.config.text_config.hidden_size
    out = model.llm.model(inputs_embeds=torch.zeros(1, cache_length, d_llm), use_cache=True,
                          position_ids=torch.arange(cache_length)[None])
    cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
    embed = model.llm.get_input_embeddings()
    with FlopCounterMode(display=False) as counter:
        step = model.llm.model(inputs_embeds=embed(torch.zeros(1, 1, dtype=torch.long)), use_cache=True,
                               position_ids=torch.tensor([[cache_length]]), **{CACHE_KWARG: cache})
        model.llm.lm_head(step.last_hidden_state)
    return counter.get_total_flops()


def count_flops(name: str, config, lengths: dict) -> dict[str, float]:
    """TFLOPs per component of one answer, on the meta device.

    A cached decoding step costs a + b·(tokens before it): the sum over the answer's steps is exactly the number of
    steps times the mean of the first and the last step, so two steps are counted instead of all of them."""
    out = {}
    with torch.device("meta"), torch.no_grad():
        model = build(name, config)
        for component, run in answer_steps(model, lengths, seg_split(lengths["seg"]), "meta").items():
            if component == "LLM decode":
                steps = lengths["answer"] - 1  # the first answer token came from the prefill's lm_head
                prompt = lengths["prompt"] + IMAGES * vision_tokens(model.config)
                first, last = decode_step_flops(model, prompt), decode_step_flops(model, prompt + steps - 1)
                out[component] = steps * (first + last) / 2 / 1e12
                continue
            with FlopCounterMode(display=False) as counter:
                run()
            out[component] = counter.get_total_flops() / 1e12
    return out


def time_answer(name: str, config, lengths: dict, repeats: int) -> tuple[float, float]:
    """Median seconds of one answer on one CPU thread, with and without SAM's image encoder (and mask decoder).

    The clock is the process's CPU time, not the wall clock: on one thread it is the latency on an idle core,
    and unlike the wall clock it does not grow with whatever else a shared machine is running."""
    torch.manual_seed(0)
    with torch.no_grad():
        model = build(name, config).eval()
        steps = answer_steps(model, lengths, seg_split(lengths["seg"]), "cpu")
        totals, sam = [], []
        for repeat in range(repeats + 1):  # the first run warms up
            times = {}
            for component, run in steps.items():
                started = time.process_time()
                run()
                times[component] = time.process_time() - started
            if repeat:
                totals.append(sum(times.values()))
                sam.append(times["SAM encoder"] + times["SAM decoder"])
    return statistics.median(totals), statistics.median(t - s for t, s in zip(totals, sam))


# ---------------------------------------------------------------- report
def change(calico: float, base: float) -> float:
    return 100 * (calico / base - 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="built MixedParts folder for the text lengths (default: the "
                        "embedded tiny synthetic build, made in a temporary folder)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--tokenizer", help="local GLaMM / Vicuna tokenizer folder for exact text lengths")
    parser.add_argument("--latency", action="store_true", help="also time the three on this CPU, scaled down")
    parser.add_argument("--width-divisor", type=int, default=16, help="width reduction of the --latency models")
    parser.add_argument("--depth-divisor", type=int, default=4, help="depth reduction of the --latency models")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per system (after one warm-up)")
    parser.add_argument("--latency-only", action="store_true", help="with --latency: skip the FLOP count")
    args = parser.parse_args(argv)

    data = args.data or demo_dataset()
    lengths = text_lengths(data, args.split, args.tokenizer)
    print(f"text of one answer, mean over the {lengths['samples']} samples of {data} [{args.split}]: prompt "
          f"{lengths['prompt']} tokens (+ visual tokens), answer {lengths['answer']} tokens, "
          f"{lengths['seg']:.1f} [SEG]; lengths {lengths['how']}")

    result = {"answer_tokens": lengths["answer"], "prompt_text_tokens": lengths["prompt"], "seg": lengths["seg"]}
    if not args.latency_only:
        result.update(flops_table(lengths))
    if args.latency:
        result.update(latency_table(lengths, args.width_divisor, args.depth_divisor, args.repeats))
    print(json.dumps(result))
    return 0


def flops_table(lengths: dict) -> dict:
    flops = {name: count_flops(name, config, lengths) for name, config in configs().items()}
    visual = {name: vision_tokens(config) for name, config in configs().items()}
    print(f"\nTFLOPs of one whole answer (2 images){'':6s}" + "".join(f"{k:>11s}" for k in SYSTEMS))
    for component in COMPONENTS:
        print(f"  {component:38s}" + "".join(f"{flops[n].get(component, 0.0):11.3f}" for n in SYSTEMS))
    totals = {n: sum(flops[n].values()) for n in SYSTEMS}
    no_sam = {n: totals[n] - flops[n]["SAM encoder"] for n in SYSTEMS}
    print(f"  {'total':38s}" + "".join(f"{totals[n]:11.2f}" for n in SYSTEMS))
    print(f"  {'total without SAM image encoder':38s}" + "".join(f"{no_sam[n]:11.2f}" for n in SYSTEMS))
    print(f"  {'visual tokens per image':38s}" + "".join(f"{visual[n]:11d}" for n in SYSTEMS))
    result = {"tflops": totals, "tflops_without_sam_encoder": no_sam, "paper_tflops_change": PAPER_TFLOPS}
    for base in SYSTEMS[1:]:
        print(f"Calico vs {base}: {change(totals['Calico'], totals[base]):+.1f}% TFLOPs with SAM's image encoder, "
              f"{change(no_sam['Calico'], no_sam[base]):+.1f}% without  (paper: {PAPER_TFLOPS:+.1f}%)")
        result[f"change_vs_{base}"] = {"with_sam": change(totals["Calico"], totals[base]),
                                       "without_sam_encoder": change(no_sam["Calico"], no_sam[base])}
    return result


def latency_table(lengths: dict, width_divisor: int, depth_divisor: int, repeats: int) -> dict:
    from tqdm import tqdm

    result = {}
    small = configs(width_divisor, depth_divisor)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU time of one thread = latency on one idle core (see time_answer)
    print(f"\nCPU latency of one answer at 1/{width_divisor} width and 1/{depth_divisor} depth (same sequence "
          f"lengths), CPU seconds on one thread, median of {repeats}:")
    latency = {}
    started = time.process_time(), time.perf_counter()
    for name in tqdm(SYSTEMS, desc="timing", leave=False):
        latency[name] = time_answer(name, small[name], lengths, repeats)
        tqdm.write(f"  {name:10s} {latency[name][0]:7.2f} s, {latency[name][1]:7.2f} s without SAM")
    result["cpu_latency_s"] = {n: {"with_sam": t, "without_sam": s} for n, (t, s) in latency.items()}
    for base in SYSTEMS[1:]:
        for label, i in (("with SAM", 0), ("without SAM", 1)):
            faster = 100 * (latency[base][i] / latency["Calico"][i] - 1)
            saved = 100 * (1 - latency["Calico"][i] / latency[base][i])
            print(f"CPU: Calico vs {base} {label}: {faster:+.1f}% speed (t_base/t_calico - 1), "
                  f"{saved:.1f}% less time  (paper: +{PAPER_SPEEDUP}% speedup, GPU)")
            result.setdefault("cpu_speedup_vs", {}).setdefault(base, {})[label] = {
                "speed_change": faster, "time_saved": saved}
    torch.set_num_threads(threads)
    result.update(cpu_width_divisor=width_divisor, cpu_depth_divisor=depth_divisor, cpu_threads=1,
                  cpu_timing_process_s=time.process_time() - started[0],
                  cpu_timing_wall_s=time.perf_counter() - started[1])
    return result


if __name__ == "__main__":
    raise SystemExit(main())
