"""Pictures of samples: images side by side, one colour per label, question and answer underneath;
with a prediction, a second row shows the predicted masks and each ground-truth segment's best IoU.
:func:`draw_grid` makes a contact sheet of many samples.

Colours are assigned per picture from a palette of well-separated colours, in the order labels first
appear (the same label has the same colour in the ground-truth and prediction rows). Masks are tinted
lightly and outlined strongly (the synthetic images are themselves flat colour polygons); object masks
of part questions lighter still, so that the parts on them stay readable; outlines that would coincide
are drawn nested. ``image_row`` adds the plain images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mixedparts import masks as rle

ROW_HEIGHT = 300
MARGIN = 12
FONT_SIZE = 15
LINE_HEIGHT = FONT_SIZE + 6
MIN_TEXT_WIDTH = 640

# Sasha Trubetskoy's 20 distinct colours, the most distinct first (white and black left out).
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
           (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
           (0, 0, 128), (128, 128, 128)]
ARTICLES = ("a ", "an ", "the ")


def label_colour(label: str) -> tuple[int, int, int]:
    """A stable colour for a label outside any picture's palette (used past the palette's 20 colours)."""
    digest = hashlib.sha256(label.encode()).digest()
    hue = digest[0] / 255.0
    i, f = int(hue * 6) % 6, hue * 6 - int(hue * 6)
    v, s = 0.95, 0.85
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return tuple(int(255 * c) for c in rgb)


def bare(label: str) -> str:
    """A label without case, surrounding space or a leading article (to match predicted phrases)."""
    text = " ".join(str(label).lower().split())
    for article in ARTICLES:
        if text.startswith(article):
            return text[len(article):]
    return text


class Colours:
    """Label -> colour for one picture: palette colours in order of first use."""

    def __init__(self, labels: Sequence[str] = ()):
        self._assigned: dict[str, tuple[int, int, int]] = {}
        for label in labels:
            self(label)

    def __call__(self, label: str) -> tuple[int, int, int]:
        key = bare(label)
        if key not in self._assigned:
            n = len(self._assigned)
            self._assigned[key] = PALETTE[n] if n < len(PALETTE) else label_colour(key)
        return self._assigned[key]


def _font(size: int = FONT_SIZE):
    return ImageFont.load_default(size=size)


def _text_width(text: str, font) -> int:
    return int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font))


def wrap(text: str, font, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels."""
    lines, current = [], ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and _text_width(candidate, font) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return lines + ([current] if current else [])


def _resized_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape[::-1] == size:
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127


def _outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def _shrunk(mask: np.ndarray, width: int) -> np.ndarray:
    """``mask`` eroded by ``width`` pixels (4-neighbourhood)."""
    return mask & ~_outline(mask, width) if width > 0 else mask


def overlay(image: Image.Image, segments: Sequence[Mapping], colours: Colours | None = None,
            height: int | None = None, alpha: float = 0.3) -> Image.Image:
    """``image`` (resized to ``height``) with each segment's mask tinted lightly in its label's colour and
    outlined strongly, so that the picture's own content stays readable under the masks.

    Segments of kind ``object`` in a picture that also has parts are drawn first, lighter, with a
    thicker outline. A mask whose outline would fall on one already drawn (e.g. two labels predicted
    with the same box) is outlined a few pixels further inside, so that every mask stays visible.
    Masks whose size differs from the image are skipped.
    """
    colours = colours or Colours()
    image = image.convert("RGB")
    original = (image.height, image.width)
    if height is not None and image.height != height:
        scale = height / image.height
        size = (max(1, round(image.width * scale)), height)
        image = image.resize(size, Image.BILINEAR if scale > 1 else Image.LANCZOS)
    pixels = np.asarray(image, dtype=np.float32).copy()
    display = (pixels.shape[1], pixels.shape[0])
    has_parts = any(s.get("kind", "object") != "object" for s in segments)
    ordered = sorted(segments, key=lambda s: 0 if s.get("kind") == "object" else 1)
    outlines: list[tuple[np.ndarray, np.ndarray]] = []
    drawn = np.zeros(pixels.shape[:2], dtype=bool)
    for segment in ordered:
        mask = segment["mask"]
        mask = rle.decode(mask) if isinstance(mask, Mapping) else np.asarray(mask, dtype=bool)
        if mask.shape != original:
            continue
        mask = _resized_mask(mask, display)
        colour = np.array(colours(segment["label"]), dtype=np.float32)
        light = has_parts and segment.get("kind") == "object"
        strength = 0.15 if light else alpha
        pixels[mask] = (1 - strength) * pixels[mask] + strength * colour
        width = 4 if light else 3
        region, inset = mask, 0
        while _outline(region, width).any() and inset < 5 and \
                (_outline(region, width) & drawn).sum() > 0.5 * _outline(region, width).sum():
            inset += 1
            region = _shrunk(mask, inset * (width + 1))
        edge = _outline(region, width)
        drawn |= edge
        outlines.append((edge, _outline(region, 1), colour))
    # Outlines last, over every tint, each with a dark outer rim so that it reads on light and dark content.
    for edge, rim, colour in outlines:
        pixels[edge] = colour
        pixels[rim] = 0.35 * colour
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _tiles(images: Sequence[Image.Image], segments: Sequence[Mapping], colours: Colours, height: int,
           sizes: Sequence[tuple[int, int]]) -> list[Image.Image]:
    tiles = []
    for index, image in enumerate(images):
        own = [s for s in segments if s["image_index"] == index and _mask_size(s) == sizes[index]]
        tiles.append(overlay(image, own, colours, height=height))
    return tiles


def _mask_size(segment: Mapping) -> tuple[int, int]:
    mask = segment["mask"]
    if isinstance(mask, Mapping):
        return int(mask["size"][0]), int(mask["size"][1])
    return tuple(np.shape(mask))


def segment_ious(row: Mapping, prediction: Mapping) -> list[float]:
    """Per ground-truth segment: the best IoU with any predicted mask of the same image."""
    return [best for best, _ in best_matches(row, prediction)]


def best_matches(row: Mapping, prediction: Mapping) -> list[tuple[float, str | None]]:
    """Per ground-truth segment: (best IoU with a predicted mask of its image, that mask's label)."""
    out = []
    for segment in row["segments"]:
        best, label = 0.0, None
        for candidate in prediction.get("segments", []):
            if candidate["image_index"] != segment["image_index"] or \
                    list(candidate["mask"]["size"]) != list(segment["mask"]["size"]):
                continue
            value = rle.iou(segment["mask"], candidate["mask"])
            if value > best or label is None:
                best, label = value, candidate.get("label", "")
        out.append((best, label))
    return out


def _legend(row: Mapping) -> list[tuple[str, str]]:
    """(label, description) once per (label, kind), in answer order."""
    lines, seen = [], set()
    for segment in row["segments"]:
        key = (segment["label"], segment["kind"])
        if key in seen:
            continue
        seen.add(key)
        images = sorted({s["image_index"] + 1 for s in row["segments"] if (s["label"], s["kind"]) == key})
        where = "image" if len(images) == 1 else "images"
        lines.append((segment["label"], f"{segment['label']}  ({segment['kind'].replace('_', ' ')}, {where} "
                                        f"{', '.join(map(str, images))})"))
    return lines


def draw_sample(row: Mapping, images: Sequence[Image.Image], prediction: Mapping | None = None,
                title: str | None = None, height: int = ROW_HEIGHT, image_row: bool = False) -> Image.Image:
    """The picture of one sample (and optionally a prediction for it); ``image_row`` puts the images
    without any overlay above the masks (what a figure shows next to them)."""
    font, bold = _font(), _font(FONT_SIZE + 2)
    sizes = [(int(i["height"]), int(i["width"])) for i in row["images"]]
    colours = Colours([s["label"] for s in row["segments"]])
    if prediction is not None:
        for segment in prediction.get("segments", []):
            colours(segment.get("label", ""))
    rows = [("images", _tiles(images, [], colours, height, sizes))] if image_row else []
    rows.append(("ground truth", _tiles(images, row["segments"], colours, height, sizes)))
    if prediction is not None:
        caption = f"prediction{' (' + title + ')' if title else ''}"
        rows.append((caption, _tiles(images, prediction.get("segments", []), colours, height, sizes)))
    width = max(MIN_TEXT_WIDTH, max(sum(t.width for t in tiles) + MARGIN * (len(tiles) - 1) for _, tiles in rows))
    text_width = width

    # (text, colour, font, swatch colour or None, indent)
    lines: list[tuple[str, tuple, object, tuple | None, int]] = []
    lines.append((f"{row['sample_id']}", (0, 0, 0), bold, None, 0))
    lines.append((f"{row['source']} · {row['split']} · {row['task'].replace('_', ' ')}", (90, 90, 90), font, None, 0))
    for label, text in _legend(row):
        lines.append((text, (20, 20, 20), font, colours(label), FONT_SIZE + 6))
    for prefix, body, colour in (("Q:", row["question"], (20, 20, 20)), ("A:", row["answer"], (20, 20, 20))):
        for k, line in enumerate(wrap(f"{prefix} {body}", font, text_width)):
            lines.append((line, colour, font, None, 0))
    if prediction is not None:
        for line in wrap("Predicted: " + (prediction.get("text") or "(no text)"), font, text_width):
            lines.append((line, (40, 40, 150), font, None, 0))
        lines.append(("IoU of each ground-truth segment with the best predicted mask of its image:", (0, 0, 0),
                      font, None, 0))
        for segment, (iou, label) in zip(row["segments"], best_matches(row, prediction)):
            matched = (f"  - best match: predicted {label!r}" if label is not None
                       else "  - no predicted mask in this image")
            lines.append((f"{iou:4.2f}  {segment['label']} (image {segment['image_index'] + 1}){matched}",
                          (20, 20, 20), font, colours(segment["label"]), FONT_SIZE + 6))
    width = max(width, max(_text_width(t, f) + indent for t, _, f, _, indent in lines)) + 2 * MARGIN

    canvas_height = MARGIN + len(rows) * (LINE_HEIGHT + height + MARGIN) + len(lines) * LINE_HEIGHT + MARGIN
    canvas = Image.new("RGB", (width, canvas_height), "white")
    draw = ImageDraw.Draw(canvas)
    y = MARGIN
    for caption, tiles in rows:
        draw.text((MARGIN, y), caption, fill=(0, 0, 0), font=bold)
        y += LINE_HEIGHT
        x = MARGIN
        for index, tile in enumerate(tiles):
            canvas.paste(tile, (x, y))
            draw.text((x + 5, y + 4), f"IMAGE{index + 1}", fill=(255, 255, 255), font=bold, stroke_width=2,
                      stroke_fill=(0, 0, 0))
            x += tile.width + MARGIN
        y += height + MARGIN
    for text, colour, line_font, swatch, indent in lines:
        if swatch is not None:
            draw.rectangle((MARGIN, y + 3, MARGIN + FONT_SIZE - 2, y + FONT_SIZE + 1), fill=swatch, outline=(0, 0, 0))
        draw.text((MARGIN + indent, y), text, fill=colour, font=line_font)
        y += LINE_HEIGHT
    return canvas


def draw_grid(rows: Sequence[Mapping], images: Sequence[Sequence[Image.Image]], columns: int = 3,
              height: int = 150) -> Image.Image:
    """A contact sheet: one card per sample (its images with masks, task, labels and sample id)."""
    font, bold, small = _font(FONT_SIZE - 1), _font(FONT_SIZE), _font(FONT_SIZE - 3)
    cards = []
    for row, row_images in zip(rows, images):
        colours = Colours([s["label"] for s in row["segments"]])
        sizes = [(int(i["height"]), int(i["width"])) for i in row["images"]]
        tiles = _tiles(row_images, row["segments"], colours, height, sizes)
        cards.append((row, tiles, colours))
    card_width = max([sum(t.width for t in tiles) + 4 * (len(tiles) - 1) for _, tiles, _ in cards] + [300])

    layouts = []
    for row, tiles, colours in cards:
        lines: list[tuple[str, tuple, object, tuple | None]] = [
            (f"{row['task'].replace('_', ' ')} · {row['source']} · {row['split']}", (0, 0, 0), bold, None)]
        labels: list[str] = []
        for label, _ in _legend(row):
            if label not in labels:
                labels.append(label)
        # Several labels per line, each with its swatch.
        line, line_width = [], 0
        for label in labels:
            item_width = FONT_SIZE + 4 + _text_width(label, font) + 12
            if line and line_width + item_width > card_width:
                lines.append(("\t".join(line), (20, 20, 20), font, "labels"))
                line, line_width = [], 0
            line.append(label)
            line_width += item_width
        if line:
            lines.append(("\t".join(line), (20, 20, 20), font, "labels"))
        lines.append((row["sample_id"], (110, 110, 110), small, None))
        layouts.append((row, tiles, colours, lines))
    card_height = height + 6 + max(len(lines) for *_, lines in layouts) * (LINE_HEIGHT - 2)
    count_rows = (len(layouts) + columns - 1) // columns
    gap = 2 * MARGIN
    canvas = Image.new("RGB", (MARGIN * 2 + columns * card_width + (columns - 1) * gap,
                               MARGIN * 2 + count_rows * card_height + (count_rows - 1) * gap), "white")
    draw = ImageDraw.Draw(canvas)
    for n, (row, tiles, colours, lines) in enumerate(layouts):
        x0 = MARGIN + (n % columns) * (card_width + gap)
        y = MARGIN + (n // columns) * (card_height + gap)
        x = x0
        for index, tile in enumerate(tiles):
            canvas.paste(tile, (x, y))
            draw.text((x + 4, y + 3), f"{index + 1}", fill=(255, 255, 255), font=bold, stroke_width=2,
                      stroke_fill=(0, 0, 0))
            x += tile.width + 4
        y += height + 6
        for text, colour, line_font, kind in lines:
            if kind == "labels":
                x = x0
                for label in text.split("\t"):
                    draw.rectangle((x, y + 3, x + FONT_SIZE - 4, y + FONT_SIZE - 1), fill=colours(label),
                                   outline=(0, 0, 0))
                    draw.text((x + FONT_SIZE, y), label, fill=colour, font=line_font)
                    x += FONT_SIZE + 4 + _text_width(label, line_font) + 12
            else:
                draw.text((x0, y), text, fill=colour, font=line_font)
            y += LINE_HEIGHT - 2
    return canvas
