"""Pictures of samples: images side by side, one colour per label, question and answer underneath;
with a prediction, a second row shows the predicted masks and each ground-truth segment's best IoU."""

from __future__ import annotations

import hashlib
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mixedparts import masks

ROW_HEIGHT = 260
MARGIN = 10
FONT_SIZE = 14
TEXT_WIDTH_CHARS = 110


def label_colour(label: str) -> tuple[int, int, int]:
    """The same label gets the same colour in ground truth and predictions, across pictures."""
    digest = hashlib.sha256(label.encode()).digest()
    hue = digest[0] / 255.0
    # A bright, saturated colour from the hue (HSV with s=0.85, v=0.95).
    i, f = int(hue * 6) % 6, hue * 6 - int(hue * 6)
    v, s = 0.95, 0.85
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return tuple(int(255 * c) for c in rgb)


def _font(size: int = FONT_SIZE):
    return ImageFont.load_default(size=size)


def overlay(image: Image.Image, segments: list[dict], alpha: float = 0.55) -> Image.Image:
    """``image`` with each segment's mask blended in its label's colour, outlined for readability."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    edges = np.zeros(pixels.shape[:2], dtype=bool)
    for segment in segments:
        mask = masks.decode(segment["mask"])
        if mask.shape != pixels.shape[:2]:
            continue
        colour = np.array(label_colour(segment["label"]), dtype=np.float32)
        pixels[mask] = (1 - alpha) * pixels[mask] + alpha * colour
        inner = mask.copy()
        inner[1:, :] &= mask[:-1, :]
        inner[:-1, :] &= mask[1:, :]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        edge = mask & ~inner
        pixels[edge] = colour
        edges |= edge
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _row(images: list[Image.Image], segments: list[dict]) -> list[Image.Image]:
    tiles = []
    for index, image in enumerate(images):
        tile = overlay(image, [s for s in segments if s["image_index"] == index])
        scale = ROW_HEIGHT / tile.height
        tiles.append(tile.resize((max(1, round(tile.width * scale)), ROW_HEIGHT), Image.NEAREST))
    return tiles


def _legend_lines(row: dict, prediction: dict | None) -> list[tuple[str, tuple[int, int, int]]]:
    lines, seen = [], set()
    for segment in row["segments"]:
        key = (segment["label"], segment["kind"])
        if key not in seen:
            seen.add(key)
            images = sorted({s["image_index"] + 1 for s in row["segments"] if (s["label"], s["kind"]) == key})
            lines.append((f"{segment['label']} ({segment['kind'].replace('_', ' ')}; image "
                          f"{', '.join(map(str, images))})", label_colour(segment["label"])))
    return lines


def segment_ious(row: dict, prediction: dict) -> list[float]:
    """Per ground-truth segment: the best IoU with any predicted mask of the same image."""
    out = []
    for segment in row["segments"]:
        candidates = [p["mask"] for p in prediction.get("segments", []) if p["image_index"] == segment["image_index"]
                      and list(p["mask"]["size"]) == list(segment["mask"]["size"])]
        out.append(max((masks.iou(segment["mask"], c) for c in candidates), default=0.0))
    return out


def draw_sample(row: dict, images: list[Image.Image], prediction: dict | None = None,
                title: str | None = None) -> Image.Image:
    font, bold = _font(), _font(FONT_SIZE + 2)
    rows = [("ground truth", _row(images, row["segments"]))]
    if prediction is not None:
        rows.append((f"prediction{': ' + title if title else ''}", _row(images, prediction.get("segments", []))))
    width = max(sum(t.width for t in tiles) + MARGIN * (len(tiles) + 1) for _, tiles in rows)

    text: list[tuple[str, tuple[int, int, int], object]] = [
        (f"{row['sample_id']} · {row['source']} · {row['split']} · {row['task']}", (0, 0, 0), bold)]
    for label, colour in _legend_lines(row, prediction):
        text.append((f"SWATCH{label}", colour, font))
    text += [(line, (20, 20, 20), font) for line in textwrap.wrap("Q: " + row["question"], TEXT_WIDTH_CHARS)]
    text += [(line, (20, 20, 20), font) for line in textwrap.wrap("A: " + row["answer"], TEXT_WIDTH_CHARS)]
    if prediction is not None:
        text += [(line, (60, 60, 160), font)
                 for line in textwrap.wrap("Predicted: " + prediction.get("text", ""), TEXT_WIDTH_CHARS)]
        for segment, iou in zip(row["segments"], segment_ious(row, prediction)):
            text.append((f"  IoU {iou:.2f}  {segment['label']} (image {segment['image_index'] + 1})",
                         label_colour(segment["label"]), font))
    line_height = FONT_SIZE + 6
    text_width = max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(t, font=f)) for t, _, f in text)
    width = max(width, text_width + 2 * MARGIN)
    height = sum(ROW_HEIGHT + line_height + MARGIN for _ in rows) + MARGIN + line_height * len(text) + MARGIN
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = MARGIN
    for caption, tiles in rows:
        draw.text((MARGIN, y), caption, fill=(0, 0, 0), font=bold)
        y += line_height
        x = MARGIN
        for index, tile in enumerate(tiles):
            canvas.paste(tile, (x, y))
            draw.text((x + 4, y + 4), f"IMAGE{index + 1}", fill=(255, 255, 255), font=bold, stroke_width=2,
                      stroke_fill=(0, 0, 0))
            x += tile.width + MARGIN
        y += ROW_HEIGHT + MARGIN
    for line, colour, line_font in text:
        x = MARGIN
        if line.startswith("SWATCH"):  # a colour square: the default font has no glyph for one
            line = line[len("SWATCH"):]
            draw.rectangle((x, y + 3, x + FONT_SIZE - 3, y + FONT_SIZE), fill=colour)
            x += FONT_SIZE + 2
        draw.text((x, y), line, fill=colour, font=line_font)
        y += line_height
    return canvas
