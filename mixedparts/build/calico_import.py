"""``mixedparts import-calico``: the authors' MixedParts bundle (pair files) as a dataset folder.

The bundle (Hugging Face ``PLAN-Lab/MixedParts``, described in ``docs/sources.md``)
holds the pair files ``mixed_parts_{train,val,test}.json`` and refined per-source annotations:
``PartImageNet/annotations/{split}[_whole]/{split}_mixed_parts.json`` and
``ADE20KPart234/ade20k_instance_{train,val}_mixed_parts.json``; PACO-LVIS uses its original files.
Images and part PNGs come from the source releases.

Every posed question becomes one sample, as in the authors' loader: an ``is_object`` record asks
for the common object; a part record asks the common-parts question when its pair has common parts
and the unique-parts question when it has unique ones. Train and val keep every object pair of a
record; test keeps the first pair only (the authors' loader evaluates that one). A label's mask is
the union of that part on the listed object annotations (resolved by part name, after the readers'
normalization and area filter); labels left without a mask are dropped and counted.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mixedparts import masks
from mixedparts.build.card import checksum_files, source_files
from mixedparts.build.materialize import sample_fields
from mixedparts.build.pairing import COMMON_OBJECT, COMMON_PARTS, UNIQUE_PARTS
from mixedparts.build.writer import check_output, finish, prepare_output, write_dataset
from mixedparts.errors import MixedPartsError, SourceError
from mixedparts.schema import SPLITS, TASKS
from mixedparts.sources import open_readers
from mixedparts.sources.ade20k_part234 import SPLIT_FILE_SUFFIX, Ade20kPart234Reader, class_lists
from mixedparts.sources.base import load_json
from mixedparts.sources.names import normalize_part
from mixedparts.sources.partimagenet import PartImageNetReader
from mixedparts.sources.records import ImageRecord, ObjectRecord

PAIR_FILE = "mixed_parts_{split}.json"
BUNDLE_SUFFIX = "_mixed_parts"
DATASET_NAMES = {"paco_lvis": "paco_lvis", "part_image_net": "partimagenet", "ade20k_part234": "ade20k_part234"}
# Which release splits each of the bundle's splits draws its images from.
RELEASE_SPLITS = {
    "paco_lvis": {"train": ("train",), "val": ("val",), "test": ("test",)},
    "partimagenet": {"train": ("train",), "val": ("val",), "test": ("test",)},
    "ade20k_part234": {"train": ("training",), "val": ("validation",), "test": ("validation",)},
}


class BundlePartImageNetReader(PartImageNetReader):
    """PartImageNet with the bundle's refined annotation files (images and PNGs from the release)."""

    def __init__(self, root, bundle: Path, **options):
        super().__init__(root, **options)
        self.bundle = bundle

    def annotation_file(self, split: str) -> Path:
        return self.bundle / "PartImageNet" / "annotations" / split / f"{split}{BUNDLE_SUFFIX}.json"

    def whole_file(self, split: str) -> Path:
        return self.bundle / "PartImageNet" / "annotations" / f"{split}_whole" / f"{split}{BUNDLE_SUFFIX}.json"


class BundleAde20kPart234Reader(Ade20kPart234Reader):
    """ADE20K-Part-234 with the bundle's instance files (images and part PNGs from the release)."""

    def __init__(self, root, bundle: Path, **options):
        super().__init__(root, **options)
        self.bundle = bundle

    def annotation_file(self, split: str) -> Path:
        return self.bundle / "ADE20KPart234" / f"ade20k_instance_{SPLIT_FILE_SUFFIX[split]}{BUNDLE_SUFFIX}.json"


@dataclass(frozen=True)
class Question:
    source: str
    split: str
    task: int
    images: tuple[ImageRecord, ...]
    chosen: tuple[ObjectRecord, ...]
    common: tuple[str, ...]
    unique_by_image: tuple[tuple[str, ...], ...]


def bundle_readers(bundle: Path, **roots_and_options) -> dict:
    """The readers of the releases given, keyed by source; those the bundle refines read its files."""
    readers = open_readers(**roots_and_options, reader_classes={
        "partimagenet": functools.partial(BundlePartImageNetReader, bundle=bundle),
        "ade20k_part234": functools.partial(BundleAde20kPart234Reader, bundle=bundle)})
    return {reader.source: reader for reader in readers}


def pair_file(bundle: Path, split: str) -> Path | None:
    for candidate in (bundle / PAIR_FILE.format(split=split), bundle / "Part_Segm" / PAIR_FILE.format(split=split)):
        if candidate.is_file():
            return candidate
    return None


def part_label(name: str) -> str:
    """``chair:leg``, ``chair's leg`` and ``leg`` all name the part ``leg``."""
    name = name.split(":")[-1].split("'s ")[-1]
    return normalize_part(name)


class BundleImporter:
    def __init__(self, bundle: Path, readers: dict, stats: Counter, progress: bool):
        self.bundle, self.readers, self.stats, self.progress = bundle, readers, stats, progress
        self.images: dict = {}  # (source, release split) -> {raw image id: ImageRecord}
        self.ade_part_names = dict(enumerate(class_lists().parts))

    def images_of(self, source: str, release_split: str) -> dict:
        key = (source, release_split)
        if key not in self.images:
            reader = self.readers[source]
            self.images[key] = {image.image_id.rsplit(":", 1)[-1]: image for image in
                                tqdm(reader.read(release_split), desc=f"reading {source}/{release_split}",
                                     unit=" images", disable=None if self.progress else True)}
        return self.images[key]

    def questions(self, split: str, path: Path) -> list[Question]:
        records = load_json(path)
        if not isinstance(records, list):
            raise SourceError(path, f"a pair file is a list of records, got {type(records).__name__}")
        out: list[Question] = []
        for index, record in enumerate(tqdm(records, desc=f"importing {split}", unit=" records",
                                            disable=None if self.progress else True)):
            out += self.record_questions(record, split, path, f"record {index}")
        return out

    def record_questions(self, record: object, split: str, path: Path, where: str) -> list[Question]:
        if not isinstance(record, dict):
            raise SourceError(path, "a pair record must be an object", where)
        for key in ("dataset_name", "img_ids", "pairs"):
            if key not in record:
                raise SourceError(path, f"missing field {key}", where)
        source = DATASET_NAMES.get(record["dataset_name"])
        if source is None:
            raise SourceError(path, f"unknown dataset_name {record['dataset_name']!r}; expected one of "
                              f"{', '.join(DATASET_NAMES)}", where)
        if source not in self.readers:
            self.stats[f"records of {source} skipped (source not given)"] += 1
            return []
        images = []
        for image_id in record["img_ids"]:
            image = None
            for release_split in RELEASE_SPLITS[source][split]:
                image = self.images_of(source, release_split).get(str(image_id)) or image
            if image is None:
                self.stats["records naming an image without usable objects skipped"] += 1
                return []
            images.append(image)
        pairs = record["pairs"] if isinstance(record["pairs"], list) else []
        if split == "test":
            pairs = pairs[:1]
        questions = []
        for pair in pairs:
            questions += self.pair_questions(record, source, split, images, pair, path, where)
        return questions

    def pair_questions(self, record, source, split, images, pair, path, where) -> list[Question]:
        if not isinstance(pair, dict) or "ann_ids" not in pair:
            raise SourceError(path, "each pair needs 'ann_ids'", where)
        chosen = []
        for image, ann_ids in zip(images, pair["ann_ids"]):
            obj = self.merged_object(source, image, ann_ids)
            if obj is None:
                self.stats["pairs whose objects were filtered out skipped"] += 1
                return []
            chosen.append(obj)
        if len(chosen) != len(images):
            raise SourceError(path, "ann_ids must list the objects of every image", where)
        common_question = dict(source=source, split=split, images=tuple(images), chosen=tuple(chosen))
        if record.get("is_object"):
            if len({obj.category for obj in chosen}) != 1:
                self.stats["object records whose objects differ in category skipped"] += 1
                return []
            return [Question(task=COMMON_OBJECT, common=(), unique_by_image=(), **common_question)]
        questions = []
        if pair.get("common"):
            names = []
            for entry in pair["common"]:
                name = self.entry_name(source, entry, path, where)
                if all(name in obj.part_names for obj in chosen):
                    names.append(name)
                else:
                    self.stats["common part labels without a mask dropped"] += 1
            if names:
                questions.append(Question(task=COMMON_PARTS, common=tuple(sorted(set(names))), unique_by_image=(),
                                          **common_question))
        if pair.get("unique"):
            unique = pair["unique"]
            per_image = []
            for i, obj in enumerate(chosen):
                names = [self.unique_name(source, unique, i, j, path, where)
                         for j in range(len(unique.get("part_cats", [[]] * len(chosen))[i]))]
                kept = sorted({n for n in names if n in obj.part_names})
                self.stats["unique part labels without a mask dropped"] += len(set(names)) - len(kept)
                per_image.append(tuple(kept))
            if any(per_image):
                questions.append(Question(task=UNIQUE_PARTS, common=(), unique_by_image=tuple(per_image),
                                          **common_question))
        return questions

    def entry_name(self, source, entry, path, where) -> str:
        if source == "ade20k_part234" and "part_cat_ids" in entry:
            ids = [i for per_image in entry["part_cat_ids"] for i in (per_image if isinstance(per_image, list)
                                                                      else [per_image])]
            if ids and ids[0] in self.ade_part_names:
                return part_label(self.ade_part_names[ids[0]])
        if "part_cat" not in entry:
            raise SourceError(path, "a common entry needs 'part_cat'", where)
        return part_label(str(entry["part_cat"]))

    def unique_name(self, source, unique, image_index, j, path, where) -> str:
        try:
            return part_label(str(unique["part_cats"][image_index][j]))
        except (KeyError, IndexError, TypeError):
            raise SourceError(path, "'unique' needs 'part_cats' per image", where) from None

    @staticmethod
    def merged_object(source: str, image: ImageRecord, ann_ids) -> ObjectRecord | None:
        """The listed object annotations OR-merged into one object (PartImageNet: its single object)."""
        if source == "partimagenet":
            objects = list(image.objects[:1])
        else:
            wanted = {str(a) for a in (ann_ids if isinstance(ann_ids, list) else [ann_ids])}
            objects = [o for o in image.objects if o.annotation_id in wanted]
        if not objects:
            return None
        if len(objects) == 1:
            return objects[0]
        mask = masks.union([o.mask for o in objects])
        return ObjectRecord(annotation_id="+".join(o.annotation_id for o in objects), category=objects[0].category,
                            mask=mask, area=masks.area(mask), parts=tuple(p for o in objects for p in o.parts))


def import_bundle(bundle: str | Path, out: str | Path, *, seed: int = 0, shard_rows: int = 50000, workers: int = 1,
                  progress: bool = True, **source_roots_and_options) -> tuple[dict, Counter]:
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise SourceError(bundle, "bundle folder not found")
    readers = bundle_readers(bundle, **source_roots_and_options)
    if not readers:
        raise MixedPartsError("no source given: pass --paco, --partimagenet and/or --ade20k-part234")
    pair_files = {split: pair_file(bundle, split) for split in SPLITS}
    pair_files = {split: path for split, path in pair_files.items() if path is not None}
    if not pair_files:
        raise SourceError(bundle, f"no pair files ({PAIR_FILE.format(split='{train,val,test}')}) in the bundle")
    out = Path(out)
    bundle_files = {split: checksum_files([path], path.parent) for split, path in pair_files.items()}
    sources = {name: {"root": str(r.root.resolve()), "files": checksum_files(source_files(name, r.root), r.root),
                      "settings": r.settings()}
               for name, r in readers.items()}
    fingerprint = {"import": "calico-bundle", "seed": seed, "shard_rows": shard_rows, "bundle": bundle_files,
                   "sources": sources}
    check_output(out, fingerprint)

    stats: Counter = Counter()
    importer = BundleImporter(bundle, readers, stats, progress)
    questions = {split: importer.questions(split, path) for split, path in pair_files.items()}
    questions = {split: qs for split, qs in questions.items() if qs}
    if not questions:
        raise MixedPartsError("the bundle's pair files yield no question for the given sources")
    state = prepare_output(out, fingerprint)  # only now: bad input above leaves the folder untouched

    def rows_between(split: str, start: int, end: int) -> list:
        return [sample_fields(q.source, q.split, q.task, list(q.images), list(q.chosen), seed, list(q.common),
                              [list(u) for u in q.unique_by_image]) for q in questions[split][start:end]]

    split_rows = {split: len(qs) for split, qs in questions.items()}
    shards, _, _ = write_dataset(out, state, split_rows, rows_between, shard_rows, workers, progress)
    counts = {split: {} for split in questions}
    for split, qs in questions.items():
        for (source, task), n in sorted(Counter((q.source, TASKS[q.task]) for q in qs).items()):
            counts[split].setdefault(source, {})[task] = n
    image_roots = {name: {split: str(Path(r.image_root(RELEASE_SPLITS[name][split][0])).resolve())
                          for split in SPLITS if r.image_root(RELEASE_SPLITS[name][split][0]) is not None}
                   for name, r in readers.items()}
    finish(out, shards, split_rows, counts, {"options": {"import": "calico-bundle", "seed": seed,
                                                         "shard_rows": shard_rows},
                                            "seed": seed, "bundle": {"root": str(bundle.resolve()),
                                                                     "files": bundle_files},
                                            "sources": sources, "image_roots": image_roots,
                                            "import_stats": dict(stats)})
    for reader in readers.values():
        stats.update({f"{reader.source}: {k}": v for k, v in reader.stats.counts.items()})
    return split_rows, stats


def describe(stats: Counter) -> str:
    return json.dumps(dict(sorted(stats.items())), indent=1)
