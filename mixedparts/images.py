"""Finding and opening a sample's image files: rows reference images relative to their source's image root.

Image roots come from the dataset's ``manifest.json`` (``{source: {split: root}}``, recorded by the
builder) and from the user (``image_roots={source: root}`` or ``{source: {split: root}}``; the
user's root wins). A user root may be the folder the file names are relative to, or the release
folder as given to ``mixedparts build`` (``--partimagenet ROOT``, ``--ade20k-part234 ROOT``): the
split's image folder inside it is found. Every failure names the source, split, root and file, and
says how to pass ``image_roots``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from PIL import Image

from mixedparts.errors import MixedPartsError
from mixedparts.sources.registry import find_source, source_names


class ImageRootError(MixedPartsError):
    """No usable image root for a source and split."""


class ImageFileError(MixedPartsError):
    """An image file is absent, unreadable or not the size the dataset records."""


def manifest_image_roots(dataset_dir: str | Path) -> dict:
    """``{source: {split: root}}`` recorded by the builder in ``manifest.json`` (empty if there is none)."""
    manifest = Path(dataset_dir) / "manifest.json"
    if not manifest.is_file():
        return {}
    try:
        return json.loads(manifest.read_text()).get("image_roots", {}) or {}
    except (OSError, ValueError, AttributeError) as error:
        raise MixedPartsError(f"{manifest}: cannot read: {error}") from None


def split_subfolders(source: str, split: str) -> list[str]:
    """Where a release folder keeps the images of one of our splits (its spec's ``image_folders``)."""
    spec = find_source(source)
    return list(spec.image_folders.get(split, ())) if spec is not None else []


def parse_root_options(values: list[str] | None) -> dict[str, str]:
    """``--image-root SOURCE=PATH`` options -> ``{source: path}``."""
    roots: dict[str, str] = {}
    for value in values or []:
        source, sep, path = value.partition("=")
        if not sep or not source or not path:
            raise MixedPartsError(f"--image-root {value!r}: expected SOURCE=PATH, e.g. paco_lvis=/data/coco")
        roots[source.strip()] = path
    return roots


def _how_to_pass(source: str) -> str:
    spec = find_source(source)
    example = spec.example_root if spec is not None else "/path/to/images"
    hint = spec.root_hint if spec is not None else "the folder the rows' file names are relative to"
    return (f"pass image_roots={{{source!r}: {example!r}}} to load_dataset, or --image-root {source}={example} "
            f"on the command line ({source}'s root is {hint})")


class ImageResolver:
    """Maps (source, split, file name) to a file and opens it; picklable (DataLoader workers).

    ``manifest_roots``: ``{source: {split: root}}`` from ``manifest.json``; ``user_roots``:
    ``{source: root}`` or ``{source: {split: root}}``; ``origin``: where the manifest came from
    (for messages).
    """

    def __init__(self, manifest_roots: Mapping | None = None, user_roots: Mapping | None = None,
                 origin: str | None = None):
        self.manifest_roots = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (manifest_roots or {}).items()}
        self.user_roots = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (user_roots or {}).items()}
        unknown = sorted(set(self.user_roots) - set(source_names()))
        if unknown:  # a misspelt source would otherwise be ignored, and its images looked for elsewhere
            raise MixedPartsError(f"image root given for unknown source {unknown[0]!r}; the sources are "
                                  f"{', '.join(source_names())} (e.g. --image-root paco_lvis=/data/coco)")
        self.origin = origin
        self._chosen: dict[tuple[str, str], tuple[Path, str]] = {}

    @classmethod
    def for_dataset(cls, dataset_dir: str | Path | None, user_roots: Mapping | None = None) -> ImageResolver:
        manifest = manifest_image_roots(dataset_dir) if dataset_dir is not None else {}
        origin = f"{Path(dataset_dir) / 'manifest.json'}" if dataset_dir is not None else None
        return cls(manifest, user_roots, origin)

    # -- roots -------------------------------------------------------------------------------------

    def _configured(self, source: str, split: str) -> tuple[str | None, str, bool]:
        """(root, where it came from, whether it is the user's)."""
        for roots, where, user in ((self.user_roots, "image_roots", True),
                                   (self.manifest_roots, self.origin or "manifest.json", False)):
            root = roots.get(source)
            if isinstance(root, Mapping):
                root = root.get(split)
            if root is not None:
                return os.fspath(root), where, user
        return None, "", False

    def candidates(self, source: str, split: str) -> tuple[list[Path], str]:
        root, where, user = self._configured(source, split)
        if root is None:
            sources = sorted(set(self.user_roots) | set(self.manifest_roots))
            known = f" (roots are known for: {', '.join(sources)})" if sources else ""
            recorded = f"{self.origin} records none" if self.origin else "the dataset records none"
            raise ImageRootError(f"no image root for source {source!r}, split {split!r}: {recorded} and none was "
                                 f"given{known}; {_how_to_pass(source)}")
        base = Path(root).expanduser()
        # A user root may be the release folder; a manifest root is exactly the folder file names are relative to.
        return [base] + ([base / sub for sub in split_subfolders(source, split)] if user else []), where

    def check_root(self, source: str, split: str) -> None:
        """Raise :class:`ImageRootError` unless a root is configured for (source, split) and exists."""
        paths, where = self.candidates(source, split)
        if not any(p.is_dir() for p in paths):
            raise ImageRootError(f"the image root of {source}/{split} does not exist: {paths[0]} (from {where}); "
                                 f"{_how_to_pass(source)}")

    def root(self, source: str, split: str, file_name: str) -> Path:
        """The root ``file_name`` is found under (chosen once per source and split)."""
        key = (source, split)
        chosen = self._chosen.get(key)
        if chosen is not None:
            return chosen[0]
        paths, where = self.candidates(source, split)
        for path in paths:
            if (path / file_name).is_file():
                self._chosen[key] = (path, where)
                return path
        existing = [p for p in paths if p.is_dir()]
        if not existing:
            raise ImageRootError(f"the image root of {source}/{split} does not exist: {paths[0]} (from {where}); "
                                 f"{_how_to_pass(source)}")
        tried = ", ".join(str(p / file_name) for p in paths)
        raise ImageFileError(f"image file not found: {file_name!r} of {source}/{split} (looked for {tried}; image "
                             f"root from {where}); if the images live elsewhere, {_how_to_pass(source)}")

    # -- files -------------------------------------------------------------------------------------

    def path(self, source: str, split: str, image: Mapping) -> Path:
        return self.root(source, split, image["file_name"]) / image["file_name"]

    def open(self, source: str, split: str, image: Mapping) -> Image.Image:
        """The image as RGB, decoded; checked against the size the dataset records."""
        file_name = image["file_name"]
        root = self.root(source, split, file_name)
        path = root / file_name
        try:
            picture = Image.open(path)
        except FileNotFoundError:
            where = self._chosen.get((source, split), (root, "?"))[1]
            raise ImageFileError(f"image file not found: {path} (source {source}, split {split}, file name "
                                 f"{file_name!r}, image root {root} from {where}); if the images live elsewhere, "
                                 f"{_how_to_pass(source)}") from None
        except OSError as error:
            raise ImageFileError(f"cannot read image {path} ({source}/{split}): {error}") from None
        expected = (image.get("width"), image.get("height"))
        if None not in expected and picture.size != expected:
            picture.close()
            raise ImageFileError(f"image {path} is {picture.size[0]}x{picture.size[1]} but the dataset records "
                                 f"{expected[0]}x{expected[1]} (width x height) for {image.get('image_id', file_name)}"
                                 f": is the image root of {source}/{split} ({root}) the right release?")
        try:
            if picture.mode != "RGB":
                converted = picture.convert("RGB")
                picture.close()
                return converted
            picture.load()  # decodes and closes the file (single-frame formats)
            return picture
        except OSError as error:
            picture.close()
            raise ImageFileError(f"cannot decode image {path} ({source}/{split}): {error}") from None

    def open_all(self, source: str, split: str, images: list[Mapping]) -> list[Image.Image]:
        return [self.open(source, split, image) for image in images]


# -- the functional interface (kept for callers that hold plain root dicts) ----------------------------


def _resolver(image_roots) -> ImageResolver:
    return image_roots if isinstance(image_roots, ImageResolver) else ImageResolver(user_roots=image_roots)


def image_path(row: dict, index: int, image_roots) -> Path:
    """The file of image ``index`` of ``row``; ``image_roots`` maps source -> root or source -> {split: root}."""
    return _resolver(image_roots).path(row["source"], row["split"], row["images"][index])


def open_image(row: dict, index: int, image_roots) -> Image.Image:
    return _resolver(image_roots).open(row["source"], row["split"], row["images"][index])
