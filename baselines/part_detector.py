"""Multi-Image VLPart and Multi-Image PartGLEE: a per-image part detector turned into co-segmentation.

The recipe (``docs/baselines.md``), the same for both detectors:

1. Vocabulary: every MixedParts object name (``dog``) and every "object part" name, VLPart style
   ``dog:head`` (prompted as "a dog head"), collected from the object categories and part labels of
   all splits of the dataset (or given with ``--vocabulary FILE``, one name per line).
2. Run the detector on each image of a sample; keep instances scoring at least ``--threshold``.
3. Merge the instances of one label into one mask per image. Part labels are reduced to the bare
   part name (``dog:head`` -> ``head``) before merging, because MixedParts part labels are bare names
   shared across categories (a snake and a dog share a head).
4. ``common_object``: object names found in all images are common, each masked in every image.
   Part tasks: each image's object is its best-scoring object name; part names found in all images
   are common, part names found in exactly one image are unique to it.

The detector sits behind :class:`Detector` (``detect(image, image_info, vocabulary) -> [Instance]``):
- :class:`VLPartDetector` runs facebookresearch/VLPart (detectron2) when that code is importable;
- :class:`SavedDetections` reads detector outputs computed elsewhere: COCO results JSON (a list of
  ``{image_id, category_id, segmentation, score}`` with the category names from ``--categories`` or
  from a COCO-style ``{"categories": [...], "annotations": [...]}`` file), or a ``torch.save``d dict
  ``{image_id: detectron2 Instances or {"pred_classes", "scores", "pred_masks"}}``. Outputs are
  matched to an image by its full, source-qualified ``image_id`` (``partimagenet:test:1``) or its
  ``file_name``, never by a bare number: ids 1 of PartImageNet's test split and of ADE20K's
  validation split are different images. A COCO results file whose ``image_id`` values are the
  source's own numbers needs ``--detections-source SOURCE:SPLIT`` (``partimagenet:test``), which
  qualifies them.
- Labels: ``object:part`` is a part, a vocabulary object name is an object. A label without ``:``
  that is neither a vocabulary object nor a prompt form is a part named the PartImageNet way
  ("Quadruped Head": supercategory, then part), so it never poses as an object; COCO categories
  with a ``supercategory`` are read that way too.
PartGLEE releases no demo or inference API (only ``train_net.py --eval-only``), so ``partglee``
takes saved outputs only.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from baselines.common import Group, compose
from baselines.errors import BaselineError
from mixedparts import masks

PART_SEPARATOR = ":"


@dataclass
class Instance:
    label: str  # a vocabulary entry: "dog" or "dog:head" (prompt forms such as "dog head" are mapped back)
    score: float
    mask: object  # bool HxW array or RLE


class Detector(Protocol):
    def detect(self, image, image_info: dict, vocabulary: Sequence[str]) -> list[Instance]: ...


# ------------------------------------------------------------------ vocabulary


def vocabulary_from_rows(rows: Iterable[dict]) -> list[str]:
    """Object names, then ``object:part`` names, each sorted, from the objects and part segments of rows."""
    objects, parts = set(), set()
    for row in rows:
        category = {o["image_index"]: o["category"] for o in row["objects"]}
        objects.update(category.values())
        for segment in row["segments"]:
            if segment["kind"] != "object" and segment["image_index"] in category:
                parts.add(f"{category[segment['image_index']]}{PART_SEPARATOR}{segment['label']}")
    return sorted(objects) + sorted(parts)


def dataset_vocabulary(data: str | os.PathLike, fallback: list[dict]) -> list[str]:
    """The vocabulary of every split of a dataset folder (of the ``fallback`` rows for a Hub dataset)."""
    from mixedparts.loader import iter_rows, local_splits, resolve

    where = resolve(data)
    if not isinstance(where, Path):
        return vocabulary_from_rows(fallback)
    return vocabulary_from_rows([row for split in local_splits(where)
                                 for row in iter_rows(where, split, columns=("images", "objects", "segments"))])


def prompt(name: str) -> str:
    """VLPart's text for a vocabulary entry: ':' becomes a space ("dog:head" -> "dog head")."""
    return name.lower().replace(PART_SEPARATOR, " ")


def split_label(name: str) -> tuple[str, str | None]:
    """("dog", None) for an object, ("dog", "head") for a part."""
    obj, sep, part = name.partition(PART_SEPARATOR)
    return (obj.strip(), part.strip()) if sep else (name.strip(), None)


# ------------------------------------------------------------------ the recipe


def _as_bool(mask) -> np.ndarray:
    return masks.decode(mask).astype(bool) if isinstance(mask, dict) else np.asarray(mask, dtype=bool)


def vocabulary_label(label: str, vocabulary: Sequence[str] = ()) -> str:
    """A detector's label in the vocabulary's ``object`` / ``object:part`` form (see the module docstring)."""
    if PART_SEPARATOR in label or not vocabulary:
        return label
    by_prompt = {prompt(v): v for v in vocabulary}
    if prompt(label) in by_prompt:
        return by_prompt[prompt(label)]
    from mixedparts.sources.names import normalize, normalize_part

    words = normalize(label).split(" ", 1)
    if len(words) == 2:  # "Quadruped Head": PartImageNet's "<supercategory> <part>"
        return f"{words[0]}{PART_SEPARATOR}{normalize_part(words[1])}"
    return f"{PART_SEPARATOR}{normalize_part(label)}"


def merge(instances: Iterable[Instance], threshold: float, vocabulary: Sequence[str] = ()) -> tuple[dict, dict]:
    """(objects, parts) of one image: name -> (union mask, best score), instances below threshold dropped."""
    objects: dict[str, tuple[np.ndarray, float]] = {}
    parts: dict[str, tuple[np.ndarray, float]] = {}
    for instance in instances:
        if instance.score < threshold:
            continue
        obj, part = split_label(vocabulary_label(instance.label, vocabulary))
        target, name = (objects, obj) if part is None else (parts, part)
        mask = _as_bool(instance.mask)
        if not mask.any():
            continue
        if name in target:
            old, score = target[name]
            target[name] = (old | mask, max(score, instance.score))
        else:
            target[name] = (mask, float(instance.score))
    return objects, parts


def _ranked(names: Iterable[str], scores: dict[str, float]) -> list[str]:
    return sorted(names, key=lambda n: (-scores[n], n))


def co_segment(row: dict, detections: Sequence[Sequence[Instance]], threshold: float,
               vocabulary: Sequence[str] = ()) -> dict:
    """The prediction of one sample from each image's detector instances (the recipe in docs/baselines.md)."""
    k = len(row["images"])
    merged = [merge(detections[i], threshold, vocabulary) for i in range(k)]
    if row["task"] == "common_object":
        names = set.intersection(*(set(objects) for objects, _ in merged))
        score = {n: min(merged[i][0][n][1] for i in range(k)) for n in names}
        groups = [Group(n, {i: merged[i][0][n][0] for i in range(k)}, score[n]) for n in _ranked(names, score)]
        return compose(row["sample_id"], row["task"], groups)
    objects = []
    for i, (found, _) in enumerate(merged):
        if found:
            best = min(found, key=lambda n: (-found[n][1], n))
            objects.append(Group(best, {i: found[best][0]}, found[best][1]))
    present = [set(parts) for _, parts in merged]
    if row["task"] == "common_parts":
        names = set.intersection(*present)
        score = {n: min(merged[i][1][n][1] for i in range(k)) for n in names}
        groups = [Group(n, {i: merged[i][1][n][0] for i in range(k)}, score[n]) for n in _ranked(names, score)]
    else:
        groups = []
        for i in range(k):
            only = present[i] - set().union(*(present[j] for j in range(k) if j != i))
            score = {n: merged[i][1][n][1] for n in only}
            groups += [Group(n, {i: merged[i][1][n][0]}, score[n]) for n in _ranked(only, score)]
    return compose(row["sample_id"], row["task"], objects, groups)


# ------------------------------------------------------------------ detectors


def image_keys(image_info: dict) -> list[str]:
    """The keys an image's saved outputs may be stored under: its full image id, then its file name."""
    return [k for k in (str(image_info.get("image_id", "")), str(image_info.get("file_name", ""))) if k]


def _is_bare_number(key) -> bool:
    return isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit())


class SavedDetections:
    """Detector outputs computed elsewhere, looked up by image (see the module docstring for formats)."""

    def __init__(self, path: str | os.PathLike, categories: str | os.PathLike | None = None,
                 source: str | None = None):
        self.path = Path(path)
        self.source = source.strip().rstrip(":") if source else None
        if not self.path.is_file():
            raise BaselineError(f"{self.path}: no such detections file")
        names = self._categories(categories) if categories else {}
        self.by_image: dict[str, list[Instance]] = {}
        if self.path.suffix in (".pth", ".pt"):
            self._read_torch(names)
        else:
            self._read_json(names)
        self.matched: set[str] = set()

    def _key(self, image_id) -> str:
        """The image id as stored; a bare number only with the source it belongs to."""
        if _is_bare_number(image_id):
            if not self.source:
                raise BaselineError(f"{self.path}: image_id {image_id!r} is a bare number, which names a different "
                                    f"image in every source and split; pass --detections-source SOURCE:SPLIT (e.g. "
                                    f"partimagenet:test) to say whose numbers these are")
            return f"{self.source}{PART_SEPARATOR}{int(image_id)}"
        return str(image_id)

    @staticmethod
    def _categories(path) -> dict[int, str]:
        path = Path(path)
        try:
            if path.suffix == ".json":
                data = json.loads(path.read_text(encoding="utf-8"))
                items = data["categories"] if isinstance(data, dict) else data
                return {int(c["id"]): _category_label(c) for c in items}
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise BaselineError(f"{path}: cannot read categories: {error}") from None
        return {i: name for i, name in enumerate(lines, 1)}  # COCO ids are 1-based

    def _read_json(self, names: dict[int, str]) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise BaselineError(f"{self.path}: cannot read COCO results JSON: {error}") from None
        if isinstance(data, dict):
            names = {**{int(c["id"]): str(c["name"]) for c in data.get("categories", [])}, **names}
            sizes = {str(im["id"]): (im["height"], im["width"]) for im in data.get("images", [])}
            results = data.get("annotations", data.get("results", []))
        else:
            sizes, results = {}, data
        for n, result in enumerate(results):
            where = f"{self.path}: result {n}"
            try:
                category = int(result["category_id"])
                key = self._key(result["image_id"])
                segmentation = result["segmentation"]
                score = float(result.get("score", 1.0))
            except (KeyError, TypeError, ValueError) as error:
                raise BaselineError(f"{where}: needs image_id, category_id, segmentation ({error})") from None
            if category not in names:
                raise BaselineError(f"{where}: category_id {category} has no name; pass --categories FILE (a "
                                    f"COCO categories JSON, or one name per line for ids 1..N)")
            if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
                mask = masks.from_uncompressed(segmentation)
            elif isinstance(segmentation, dict):
                counts = segmentation["counts"]
                mask = {"size": list(segmentation["size"]),
                        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
            else:
                size = result.get("size") or sizes.get(str(result["image_id"]))
                if size is None:
                    raise BaselineError(f"{where}: polygon segmentation needs the image size (an 'images' list)")
                mask = masks.from_polygons(segmentation, *size)
            self.by_image.setdefault(key, []).append(Instance(names[category], score, mask))

    def _read_torch(self, names: dict[int, str]) -> None:
        import torch

        try:
            data = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as error:  # unpickling detectron2 Instances needs detectron2 importable
            raise BaselineError(f"{self.path}: cannot load saved detections: {error}") from None
        vocabulary = data.pop("__vocabulary__", None) if isinstance(data, dict) else None
        for key, outputs in data.items():
            fields = outputs.get("instances", outputs) if isinstance(outputs, dict) else outputs
            get = (lambda f, o=fields: o[f]) if isinstance(fields, dict) else (lambda f, o=fields: getattr(o, f))
            classes = [int(c) for c in get("pred_classes")]
            scores = [float(s) for s in get("scores")]
            pixels = np.asarray(get("pred_masks").cpu() if hasattr(get("pred_masks"), "cpu") else get("pred_masks"))
            instances = []
            for c, s, m in zip(classes, scores, pixels):
                # detectron2 pred_classes index the vocabulary (0-based)
                name = vocabulary[c] if vocabulary else names.get(c + 1)
                if name is None:
                    raise BaselineError(f"{self.path}: class {c} has no name; save '__vocabulary__' or pass "
                                        f"--categories")
                instances.append(Instance(name, s, m.astype(bool)))
            self.by_image[self._key(key)] = instances

    def detect(self, image, image_info: dict, vocabulary: Sequence[str]) -> list[Instance]:
        for key in image_keys(image_info):
            if key in self.by_image:
                self.matched.add(key)
                return self.by_image[key]
        return []

    def check_matched(self) -> None:
        """Outputs were saved for images, but none of the predicted images found its own: wrong ids."""
        if self.by_image and not self.matched:
            example = next(iter(self.by_image))
            raise BaselineError(f"{self.path}: none of its {len(self.by_image)} images (e.g. {example!r}) is an image "
                                f"of these samples; ids must be the full image ids of the dataset (e.g. "
                                f"'partimagenet:test:1'), file names, or numbers with --detections-source")


def _category_label(category: dict) -> str:
    """A COCO category's label; PartImageNet's ("Quadruped Head", supercategory "Quadruped") -> "quadruped:head"."""
    name, supercategory = str(category["name"]), category.get("supercategory")
    if isinstance(supercategory, str) and supercategory.strip() and \
            name.strip().lower().startswith(supercategory.strip().lower() + " "):
        from mixedparts.sources.names import normalize
        from mixedparts.sources.partimagenet import part_name

        return f"{normalize(supercategory)}{PART_SEPARATOR}{part_name(name, supercategory)}"
    return name


class VLPartDetector:
    """facebookresearch/VLPart through detectron2, with a custom vocabulary (its demo's ``custom`` mode).

    Needs detectron2 and the VLPart repository importable (``PYTHONPATH=/path/to/VLPart``), a config
    file and weights (e.g. ``r50_lvis_paco_pascalpart_partimagenet.pth``); the CLIP text encoder of
    VLPart embeds the prompts "a " + name.
    """

    def __init__(self, config_file: str, weights: str, device: str = "cpu", threshold: float = 0.7):
        try:
            import torch
            from detectron2.config import get_cfg
            from detectron2.engine.defaults import DefaultPredictor
            from vlpart.config import add_vlpart_config
            from vlpart.modeling.text_encoder.text_encoder import build_text_encoder
        except ImportError as error:
            raise BaselineError(f"vlpart needs detectron2 and the VLPart code (github.com/facebookresearch/VLPart) "
                                f"importable ({error}); install detectron2, put the VLPart checkout on PYTHONPATH, "
                                f"or pass --detections FILE with outputs computed elsewhere") from None
        cfg = get_cfg()
        add_vlpart_config(cfg)
        cfg.merge_from_file(config_file)
        cfg.MODEL.WEIGHTS = weights
        cfg.MODEL.DEVICE = device
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = threshold
        cfg.freeze()
        self.torch = torch
        self.predictor = DefaultPredictor(cfg)
        self.build_text_encoder = build_text_encoder
        self.vocabulary: tuple[str, ...] | None = None

    def _set_vocabulary(self, vocabulary: Sequence[str]) -> None:
        torch = self.torch
        encoder = self.build_text_encoder(pretrain=True).eval()
        with torch.no_grad():
            weight = encoder(["a " + prompt(v) for v in vocabulary]).detach().permute(1, 0).contiguous().cpu()
        weight = torch.cat([weight, weight.new_zeros((weight.shape[0], 1))], dim=1)  # + background column
        weight = torch.nn.functional.normalize(weight, p=2, dim=0).to(self.predictor.model.device)
        heads = self.predictor.model.roi_heads.box_predictor
        for head in heads if isinstance(heads, torch.nn.ModuleList) else [heads]:
            head.cls_score.zs_weight_inference = weight
        self.vocabulary = tuple(vocabulary)

    def detect(self, image, image_info: dict, vocabulary: Sequence[str]) -> list[Instance]:
        if self.vocabulary != tuple(vocabulary):
            self._set_vocabulary(vocabulary)
        bgr = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()
        instances = self.predictor(bgr)["instances"].to("cpu")
        return [Instance(vocabulary[int(c)], float(s), m.numpy().astype(bool))
                for c, s, m in zip(instances.pred_classes, instances.scores, instances.pred_masks)]


# ------------------------------------------------------------------ the runner


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detections", metavar="FILE",
                        help="saved per-image detector outputs: COCO results JSON, or a torch-saved dict of "
                             "detectron2 instances (then no detector runs)")
    parser.add_argument("--categories", metavar="FILE",
                        help="category names of --detections: a COCO categories JSON or one name per line (ids 1..N)")
    parser.add_argument("--detections-source", metavar="SOURCE:SPLIT",
                        help="with --detections whose image ids are bare numbers (COCO results): the source and "
                             "split they number, e.g. partimagenet:test (ids become partimagenet:test:N)")
    parser.add_argument("--vocabulary", metavar="FILE",
                        help="one name per line ('dog', 'dog:head'); default: every object and object:part name "
                             "of the dataset")
    parser.add_argument("--threshold", type=float, default=0.7,
                        help="minimum instance score (default 0.7, VLPart's README)")
    parser.add_argument("--config-file", metavar="YAML", help="the detector's detectron2 config (live vlpart)")
    parser.add_argument("--weights", metavar="PTH", help="the detector's weights (live vlpart)")
    parser.add_argument("--device", default="cpu")


def read_vocabulary(args: argparse.Namespace, rows: list[dict]) -> list[str]:
    if args.vocabulary:
        try:
            lines = Path(args.vocabulary).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise BaselineError(f"{args.vocabulary}: cannot read the vocabulary: {error}") from None
        return [line.strip() for line in lines if line.strip()]
    return dataset_vocabulary(args.data, rows)


def run_detector(detector: Detector, rows: list[dict], images, vocabulary: Sequence[str], threshold: float,
                 needs_pixels: bool = True) -> list[dict]:
    cache: dict[str, list[Instance]] = {}
    predictions = []
    for row in rows:
        detections = []
        for i, info in enumerate(row["images"]):
            key = f"{row['source']}/{info['image_id']}"
            if key not in cache:
                picture = images.open(row, i) if needs_pixels else None
                cache[key] = detector.detect(picture, info, vocabulary)
            detections.append(cache[key])
        predictions.append(co_segment(row, detections, threshold, vocabulary))
    return predictions


def run_vlpart(args: argparse.Namespace, rows: list[dict], images) -> list[dict]:
    vocabulary = read_vocabulary(args, rows)
    if args.detections:
        return run_saved(args, rows, images, vocabulary)
    if not (args.config_file and args.weights):
        raise BaselineError("vlpart: pass --config-file and --weights to run VLPart, or --detections FILE")
    detector = VLPartDetector(args.config_file, args.weights, args.device, args.threshold)
    return run_detector(detector, rows, images, vocabulary, args.threshold)


def run_partglee(args: argparse.Namespace, rows: list[dict], images) -> list[dict]:
    if not args.detections:
        raise BaselineError("partglee: PartGLEE releases no inference API (only detectron2 train_net.py "
                            "--eval-only on registered datasets); run it there, save its instances as COCO results "
                            "JSON, and pass --detections FILE (and --categories FILE)")
    return run_saved(args, rows, images, read_vocabulary(args, rows))


def run_saved(args: argparse.Namespace, rows: list[dict], images, vocabulary: Sequence[str]) -> list[dict]:
    saved = SavedDetections(args.detections, args.categories, args.detections_source)
    predictions = run_detector(saved, rows, images, vocabulary, args.threshold, needs_pixels=False)
    saved.check_matched()
    return predictions
