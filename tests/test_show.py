"""``mixedparts show``: pictures of one sample (with and without a prediction) and contact sheets."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mixedparts import masks
from mixedparts.build.options import BuildOptions
from mixedparts.cli import main
from mixedparts.metrics.ground_truth import read_dataset_split
from mixedparts.predictions import write_predictions
from mixedparts.reference_predictions import predict
from mixedparts.schema import SAMPLE_FIELDS
from mixedparts.viz import LINE_HEIGHT, MARGIN, PALETTE, ROW_HEIGHT, Colours, draw_grid, draw_sample

GREY = (205, 205, 205)


@pytest.fixture(scope="module")
def built(build_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("show")
    build_tiny(root / "dataset", BuildOptions())
    rows = read_dataset_split(root / "dataset", "test", columns=SAMPLE_FIELDS)
    predictions = write_predictions(root / "object-box.json", predict("object-box", rows), model="object-box",
                                    split="test")
    return SimpleNamespace(root=root, data=root / "dataset", rows=rows, predictions=predictions)


def show(built, *args) -> int:
    return main(["show", "--data", str(built.data), *args])


def tile_masks(row: dict, index: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(any mask, all masks' union) of image ``index`` resized as the picture's tile, and the tile width."""
    meta = row["images"][index]
    width = round(meta["width"] * ROW_HEIGHT / meta["height"])
    union = np.zeros((ROW_HEIGHT, width), dtype=bool)
    for segment in row["segments"]:
        if segment["image_index"] == index:
            mask = Image.fromarray(masks.decode(segment["mask"]).astype(np.uint8) * 255)
            union |= np.asarray(mask.resize((width, ROW_HEIGHT), Image.NEAREST)) > 127
    return union, width


def erode(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        shrunk = out.copy()
        shrunk[1:, :] &= out[:-1, :]
        shrunk[:-1, :] &= out[1:, :]
        shrunk[:, 1:] &= out[:, :-1]
        shrunk[:, :-1] &= out[:, 1:]
        out = shrunk
    return out


def test_show_colours_the_mask_pixels(built, tmp_path):
    """On blank canvases, pixels inside masks are coloured and pixels outside stay grey."""
    out = tmp_path / "x.png"
    assert show(built, "--index", "7", "--blank", "--out", str(out)) == 0
    row = built.rows[7]
    picture = np.asarray(Image.open(out).convert("RGB")).astype(int)
    x = MARGIN
    for index in range(len(row["images"])):
        union, width = tile_masks(row, index)
        tile = picture[MARGIN + LINE_HEIGHT:MARGIN + LINE_HEIGHT + ROW_HEIGHT, x:x + width]
        grey = np.all(tile == GREY, axis=2)
        inside, outside = erode(union, 1), ~union
        outside[:30, :120] = False  # the IMAGEk caption
        assert inside.any() and not grey[inside].any(), "every mask pixel is coloured"
        assert grey[erode(outside, 4)].all(), "pixels away from the masks keep the image"
        x += width + MARGIN
    assert picture.shape[1] >= x


def test_show_with_predictions_adds_a_row(built, tmp_path):
    alone, both = tmp_path / "alone.png", tmp_path / "both.png"
    row = next(r for r in built.rows if r["task"] == "unique_parts")
    assert show(built, "--sample-id", row["sample_id"], "--out", str(alone)) == 0
    assert show(built, "--sample-id", row["sample_id"], "--predictions", str(built.predictions),
                "--out", str(both)) == 0
    with Image.open(alone) as a, Image.open(both) as b:
        assert b.width >= a.width
        # A second image row, a line for the predicted text or more, a heading and one IoU line per segment.
        assert b.height - a.height >= ROW_HEIGHT + LINE_HEIGHT + MARGIN + (len(row["segments"]) + 2) * LINE_HEIGHT
        assert b.width < 2000 and b.height < 2000


def test_draw_sample_uses_one_colour_per_label():
    row = {"sample_id": "s", "source": "synthetic", "split": "test", "task": "common_parts",
           "question": "Q?", "answer": "A.", "images": [{"image_id": "a", "file_name": "a", "width": 40, "height": 30}],
           "segments": []}
    labels = ["chair", "leg", "seat", "leg"]
    for label, (top, left) in zip(labels, ((0, 0), (0, 20), (15, 0), (15, 20))):
        mask = np.zeros((30, 40), bool)
        mask[top + 2:top + 13, left + 2:left + 18] = True
        row["segments"].append({"label": label, "kind": "object" if label == "chair" else "common_part",
                                "image_index": 0, "mask": masks.encode(mask)})
    colours = Colours(labels)
    assert colours("leg") == PALETTE[1] and colours("the Leg") == PALETTE[1] and colours("seat") == PALETTE[2]
    picture = np.asarray(draw_sample(row, [Image.new("RGB", (40, 30), (0, 0, 0))], height=300))
    tile = picture[MARGIN + LINE_HEIGHT:MARGIN + LINE_HEIGHT + 300, MARGIN:MARGIN + 400]
    # Middle of the "leg" box at (0, 20) and of the "seat" box at (15, 0), scaled by 10: the palette colour blended
    # over black at alpha 0.3 (a light tint: the image stays readable under it).
    for (y, x), colour in (((75, 300), PALETTE[1]), ((225, 100), PALETTE[2])):
        assert np.allclose(tile[y, x], [0.3 * c for c in colour], atol=2)


def test_grid_is_seeded(built, tmp_path):
    first, again, other = (tmp_path / f"{n}.png" for n in ("first", "again", "other"))
    assert show(built, "--grid", "6", "--seed", "3", "--out", str(first)) == 0
    assert show(built, "--grid", "6", "--seed", "3", "--out", str(again)) == 0
    assert show(built, "--grid", "6", "--seed", "4", "--task", "common_object", "--out", str(other)) == 0
    assert first.read_bytes() == again.read_bytes()
    with Image.open(first) as a, Image.open(other) as b:
        assert a.width > 3 * 300 and a.height > 2 * 150
        assert np.asarray(a).shape != np.asarray(b).shape or not np.array_equal(np.asarray(a), np.asarray(b))


def test_draw_grid_cards_colour_their_masks(built):
    rows = built.rows[:4]
    images = [[Image.new("RGB", (i["width"], i["height"]), GREY) for i in r["images"]] for r in rows]
    picture = np.asarray(draw_grid(rows, images, columns=2, height=150))
    # The first card's first tile starts at (MARGIN, MARGIN) and is 150 high.
    union = np.zeros((150, round(rows[0]["images"][0]["width"] * 150 / rows[0]["images"][0]["height"])), bool)
    for segment in rows[0]["segments"]:
        if segment["image_index"] == 0:
            mask = Image.fromarray(masks.decode(segment["mask"]).astype(np.uint8) * 255)
            union |= np.asarray(mask.resize(union.shape[::-1], Image.NEAREST)) > 127
    tile = picture[MARGIN:MARGIN + 150, MARGIN:MARGIN + union.shape[1]]
    assert not np.all(tile == GREY, axis=2)[erode(union, 1)].any()


def test_show_errors(built, tmp_path, capsys):
    assert show(built, "--index", "100000", "--out", str(tmp_path / "x.png")) == 2
    assert "out of range" in capsys.readouterr().err
    assert show(built, "--sample-id", "nope", "--out", str(tmp_path / "x.png")) == 2
    assert "no sample 'nope'" in capsys.readouterr().err
    assert main(["show", "--data", str(built.data), "--image-root", f"paco_lvis={tmp_path / 'gone'}",
                 "--sample-id", next(r["sample_id"] for r in built.rows if r["source"] == "paco_lvis"),
                 "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "paco_lvis" in err and str(tmp_path / "gone") in err and "--image-root" in err
    assert not Path(tmp_path / "x.png").exists()


def test_show_reads_a_hub_dataset_through_datasets(built, tmp_path, monkeypatch):
    import datasets

    real_load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda path, **kw: real_load(str(built.data), cache_dir=str(tmp_path / "cache"), **kw))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # offline, an uncached Hub id is refused up front
    out = tmp_path / "hub.png"
    assert main(["show", "--data", "someone/mixedparts", "--index", "5", "--blank", "--out", str(out)]) == 0
    local = tmp_path / "local.png"
    assert show(built, "--index", "5", "--blank", "--out", str(local)) == 0
    assert out.read_bytes() == local.read_bytes()
    assert main(["show", "--data", "someone/mixedparts", "--grid", "2", "--blank", "--out", str(out)]) == 0
