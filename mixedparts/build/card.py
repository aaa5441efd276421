"""The dataset folder's README.md (a Hugging Face dataset card) and manifest.json."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from mixedparts.atomic import write_json

from mixedparts import schema
from mixedparts.schema import SPLITS, TASKS
from mixedparts.sources.registry import get_source, source_names


def source_files(source: str, root: Path) -> list[Path]:
    """The annotation files that decide a source's content (checksummed into the manifest)."""
    spec = get_source(source)
    patterns = {pattern.replace("{split}", split) for pattern in spec.annotation_files for split in spec.splits}
    return sorted({p for pattern in patterns for p in root.glob(pattern)})


def checksum_files(files: list[Path], root: Path) -> dict:
    """sha256 per file for JSON; one digest over all part PNGs (there are thousands)."""
    out: dict = {}
    png_digest, png_count = hashlib.sha256(), 0
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if path.suffix == ".png":
            png_digest.update(f"{path.relative_to(root)}:{digest}\n".encode())
            png_count += 1
        else:
            out[str(path.relative_to(root))] = digest
    if png_count:
        out[f"<{png_count} part PNGs>"] = png_digest.hexdigest()
    return out


def content_digest(shards: dict) -> str:
    """sha256 over every shard's name and sha256: one name for exactly this content."""
    listing = "".join(f"{name}:{shards[name]['sha256']}\n" for name in sorted(shards))
    return hashlib.sha256(listing.encode()).hexdigest()


def write_card(out: Path, counts: dict, split_rows: dict, title: str, shards: dict) -> None:
    """README.md whose YAML declares the splits (so plain ``datasets.load_dataset(out)`` works)."""
    import datasets

    info = datasets.DatasetInfo(features=schema.SAMPLE_FEATURES)._to_yaml_dict()
    header = {
        # ``datasets`` caches a local folder under <folder name>/default/0.0.0/<hash of this YAML>: the
        # hash covers the config (patterns relative to the folder, so never its path) and dataset_info,
        # not the files. Two builds in folders of the same name, or a rebuild in place, would share
        # one cache entry and the second would load the first one's rows. The config's description is
        # in that hash, so naming the shards' content there gives every build its own entry.
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"data/{s}-*"} for s in SPLITS if s in split_rows],
                     "description": f"MixedParts shards, content sha256 {content_digest(shards)}"}],
        "dataset_info": {"features": info["features"]},
        "task_categories": ["image-segmentation"],
        "pretty_name": "MixedParts",
    }
    lines = ["---", yaml.safe_dump(header, sort_keys=False).rstrip(), "---", "", f"# {title}", "",
             "Part-focused semantic co-segmentation samples (Calico, CVPR 2025): each row shows k images of "
             "comparable objects and asks for the common object, the common parts or the unique parts, with "
             "answers in the `<p> phrase </p> [SEG] (IMAGEk)` markup and one COCO RLE mask per `[SEG]`.", "",
             "**Annotations only.** Images are not included: they come from the upstream releases (COCO 2017 for "
             "PACO-LVIS, ImageNet for PartImageNet, ADE20K for ADE20K-Part-234) under their own terms, which "
             "forbid redistribution and restrict use to non-commercial research. `manifest.json` records the "
             "image roots used at build time.", "", "## Counts", "",
             "| source | task | " + " | ".join(s for s in SPLITS if s in split_rows) + " |",
             "|---|---|" + "---:|" * len(split_rows)]
    for source in source_names():
        for task in TASKS:
            row = [counts.get(s, {}).get(source, {}).get(task, 0) for s in SPLITS if s in split_rows]
            if any(row):
                lines.append(f"| {source} | {task} | " + " | ".join(f"{v:,}" for v in row) + " |")
    lines.append("| **all** | | " + " | ".join(f"**{split_rows[s]:,}**" for s in SPLITS if s in split_rows) + " |")
    lines += ["", "Load with `datasets.load_dataset(\"<this folder>\")` or `mixedparts.load_dataset`.", ""]
    (out / "README.md").write_text("\n".join(lines))


def write_json_atomic(path: Path, payload: dict) -> None:
    write_json(path, payload, indent=1)
