"""Pictures a paper can use: plain images on request, light fills, and no prediction hidden under another."""

import numpy as np
from PIL import Image

from mixedparts import masks
from mixedparts.viz import LINE_HEIGHT, MARGIN, PALETTE, Colours, draw_sample, overlay


def square(size=60, top=10, left=10, side=40) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_predictions_with_the_same_mask_all_stay_visible():
    """object-box predicts one box per label; before, only the last label's outline survived."""
    box = masks.encode(square())
    segments = [{"label": label, "image_index": 0, "mask": box} for label in ("dog", "head", "leg", "tail")]
    colours = Colours([s["label"] for s in segments])
    tile = np.asarray(overlay(Image.new("RGB", (60, 60), (128, 128, 128)), segments, colours))
    for segment in segments:
        colour = colours(segment["label"])
        assert np.all(tile == colour, axis=2).sum() >= 20, f"no outline of {segment['label']!r} visible"


def test_fills_are_light_and_outlines_strong():
    image = Image.new("RGB", (60, 60), (200, 200, 200))
    tile = np.asarray(overlay(image, [{"label": "leg", "kind": "common_part", "image_index": 0,
                                       "mask": masks.encode(square())}], Colours(["leg"]))).astype(float)
    inside = tile[30, 30]
    assert np.allclose(inside, 0.7 * 200 + 0.3 * np.array(PALETTE[0]), atol=2)  # 70% of the image shows through
    outline = np.all(tile == PALETTE[0], axis=2)
    assert outline[12:48, 11].all() and outline[12:48, 12].all(), "an outline two pixels wide in full colour"
    assert np.all(tile[10:50, 10] < np.array(PALETTE[0]) * 0.5 + 1), "with a dark rim outside it"


def test_an_image_only_row_shows_the_plain_images():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    mask = np.zeros((30, 40), bool)
    mask[5:25, 5:25] = True
    row = {"sample_id": "s", "source": "synthetic", "split": "test", "task": "common_object", "question": "Q?",
           "answer": "A.", "images": [{"image_id": "a", "file_name": "a", "width": 40, "height": 30}],
           "segments": [{"label": "cup", "kind": "object", "image_index": 0, "mask": masks.encode(mask)}]}
    image = Image.fromarray(pixels)
    plain = np.asarray(draw_sample(row, [image], height=90))
    with_row = np.asarray(draw_sample(row, [image], height=90, image_row=True))
    expected = np.asarray(image.resize((120, 90), Image.BILINEAR))
    top = MARGIN + LINE_HEIGHT
    # Below the IMAGE1 caption the first row is the image itself, untouched by any mask.
    assert np.array_equal(with_row[top + 30:top + 90, MARGIN:MARGIN + 120], expected[30:])
    assert with_row.shape[0] == plain.shape[0] + LINE_HEIGHT + 90 + MARGIN
