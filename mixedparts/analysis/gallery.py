"""The report's gallery: the worst samples of each task drawn by ``mixedparts show``'s renderer (viz.draw_sample).

Scoring reads only the columns it needs, so the full rows (question, answer) of the drawn samples
are read again from the dataset; their images come from the dataset's image roots. When either is
not at hand (a ground-truth file, images elsewhere), the picture still shows the masks, on blank
canvases of the images' sizes, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

GALLERY_FOLDER = "gallery"


def draw_gallery(out: Path, worst: Mapping[str, list[dict]], rows: list[dict], predictions, data: str | None,
                 image_roots: dict | None = None, progress: bool = True) -> dict[str, list[dict]]:
    """Draw ``worst[task]``'s samples into ``out/gallery``; returns ``{task: [{sample_id, image, note}]}``."""
    from PIL import Image
    from tqdm import tqdm

    from mixedparts.errors import MixedPartsError
    from mixedparts.viz import draw_sample

    chosen = [entry for entries in worst.values() for entry in entries]
    full = _full_rows(data, rows[0]["split"] if rows else "test", [e["position"] for e in chosen], rows)
    resolver = _resolver(data, image_roots)
    folder = out / GALLERY_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    title = predictions.model or Path(str(predictions.path)).name
    drawn: dict[str, list[dict]] = {task: [] for task in worst}
    bar = tqdm(total=len(chosen), desc="drawing the gallery", unit=" samples", disable=not progress)
    for task, entries in worst.items():
        for rank, entry in enumerate(entries, start=1):
            row = full[entry["position"]]
            note = None
            try:
                if resolver is None:
                    raise MixedPartsError("no image roots")
                images = resolver.open_all(row["source"], row["split"], row["images"])
            except (MixedPartsError, OSError):
                images = [Image.new("RGB", (int(i["width"]), int(i["height"])), (205, 205, 205))
                          for i in row["images"]]
                note = "images not found: masks drawn on blank canvases"
            prediction = predictions.by_sample.get(row["sample_id"]) or {"sample_id": row["sample_id"], "text": "",
                                                                          "segments": []}
            name = f"{task}-{rank:02d}.png"
            draw_sample(row, images, prediction, title=title).save(folder / name)
            drawn[task].append({"sample_id": row["sample_id"], "image": f"{GALLERY_FOLDER}/{name}", "note": note})
            bar.update(1)
    bar.close()
    return drawn


def _full_rows(data: str | None, split: str, positions: list[int], rows: list[dict]) -> dict[int, dict]:
    """position -> the row with every field; scoring rows with empty question and answer where unavailable."""
    found: dict[int, dict] = {}
    if data is not None and positions:
        from mixedparts.errors import MixedPartsError
        from mixedparts.loader import rows_at

        try:
            for position, row in zip(positions, rows_at(data, split, positions)):
                if row["sample_id"] == rows[position]["sample_id"]:
                    found[position] = row
        except MixedPartsError:
            pass
    for position in positions:
        if position not in found:
            found[position] = {"question": "", "answer": "", **rows[position]}
    return found


def _resolver(data: str | None, image_roots: dict | None):
    from mixedparts.images import ImageResolver
    from mixedparts.loader import resolve

    if data is None and not image_roots:
        return None
    try:
        where = resolve(data) if data is not None else None
    except Exception:  # noqa: BLE001 - a Hub name that cannot be resolved offline: no images, blank canvases
        where = None
    if isinstance(where, Path):
        return ImageResolver.for_dataset(where, image_roots)
    return ImageResolver(None, image_roots, None) if image_roots else None
