"""Loading MixedParts with Hugging Face ``datasets``, with lazy image and mask decoding.

``load_dataset("mixedparts", split="test")`` loads the dataset built at the default location
(``$MIXEDPARTS_HOME/mixedparts``); a folder path or a Hub repo id works the same way. Rows are the
sample rows of :data:`mixedparts.schema.SAMPLE_FEATURES`; with ``decode_images`` / ``decode_masks``
each row also carries

- ``pil_images``: one RGB ``PIL.Image`` per entry of ``images``, opened from the image roots
  (``manifest.json`` or ``image_roots=``), checked against the recorded size;
- ``masks``: one ``numpy`` bool array of shape (height, width) per entry of ``segments``, the
  segment's RLE decoded at its image's full resolution.

Decoding happens on access (``Dataset.set_transform``; ``IterableDataset.map`` when streaming), one
row or batch at a time: the split is never materialized. ``mixedparts.torch_data.collate`` batches
such rows for PyTorch.

Without ``datasets``, :func:`iter_rows` / :func:`read_rows` read the same rows as plain dicts from
the shards (scoring, the baselines, Calico and the exports read through them) and
:func:`image_resolver` finds the same dataset's image roots.
"""

from __future__ import annotations

import json

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from mixedparts.errors import MixedPartsError
from mixedparts.images import ImageResolver
from mixedparts.masks import InvalidMask, decode_all
from mixedparts.paths import DEFAULT_NAME, default_dataset_dir

IMAGES_COLUMN = "pil_images"
MASKS_COLUMN = "masks"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class DatasetLoadError(MixedPartsError):
    """The dataset cannot be found or loaded."""


class MaskError(MixedPartsError, ValueError):
    """A segment's mask is not a well-formed compressed RLE of its size."""


# ------------------------------------------------------------------------------------- locating


def resolve(path: str | os.PathLike | None = DEFAULT_NAME) -> Path | str:
    """A local dataset folder (Path) or a Hub repo id (str).

    ``"mixedparts"`` (or None) is the default location, ``$MIXEDPARTS_HOME/mixedparts`` (use
    ``./mixedparts`` for a folder of that name in the working directory). An existing folder is a
    folder; ``org/name`` that is not a folder is a Hub id; anything else is an error.
    """
    if path is None or str(path) == DEFAULT_NAME:
        folder = default_dataset_dir()
        if not folder.is_dir():
            raise DatasetLoadError(f"no MixedParts dataset at the default location {folder}: build one with "
                                   f"`mixedparts build ...` (it writes there unless --out is given), set "
                                   f"MIXEDPARTS_HOME, or pass a dataset folder or a Hub repo id")
        return _checked_folder(folder)
    text = os.fspath(path)
    folder = Path(text).expanduser()
    if folder.is_dir():
        return _checked_folder(folder)
    if HUB_ID.match(text) and not looks_local(text):
        if not hub_offline() or in_hub_cache(text):
            return text
        raise DatasetLoadError(f"{text}: folder not found{_nearby(folder)}, and as a Hub repo id it is not in the "
                               f"local Hub cache (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set)")
    raise DatasetLoadError(f"{text}: folder not found{_nearby(folder)}")


def looks_local(text: str) -> bool:
    """A path, not ``org/name``: explicitly relative or absolute, or its first part is a local folder
    (``mixedparts-demo/datset`` is a typo, not a Hub repo: asking the Hub costs retries and names no folder)."""
    if text.startswith((".", "/", "~")) or "\\" in text:
        return True
    return Path(text.split("/")[0]).expanduser().is_dir()


def hub_offline() -> bool:
    """The environment ``huggingface_hub`` and ``datasets`` read to stay off the network."""
    return any(os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def in_hub_cache(repo_id: str) -> bool:
    """Whether an offline ``datasets.load_dataset(repo_id)`` could find it: the Hub's download cache
    (``datasets--org--name``) or ``datasets``' own (``org___name``)."""
    from huggingface_hub import constants

    org, name = repo_id.split("/")
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(constants.HF_HOME) / "datasets")
    return (Path(constants.HF_HUB_CACHE) / f"datasets--{org}--{name}").is_dir() or \
        (datasets_cache.expanduser() / f"{org}___{name}").is_dir()


def _nearby(folder: Path) -> str:
    """Where the path stops existing, and what is there: a typo shows next to the right name."""
    parent = folder.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return ""
    names = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f" ({parent} holds {shown})" if names else f" ({parent} holds no folders)"


def _checked_folder(folder: Path) -> Path:
    if not any((folder / "data").glob("*.parquet")):
        raise DatasetLoadError(f"{folder}: not a MixedParts dataset folder (no data/*.parquet shards; build one "
                               f"with `mixedparts build --out {folder}`)")
    return folder.resolve()


def local_splits(folder: Path) -> list[str]:
    """The splits with shards in a dataset folder, in schema order."""
    from mixedparts.schema import SPLITS

    present = {p.name.split("-")[0] for p in (folder / "data").glob("*.parquet")}
    return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


def _check_split(folder: Path, split: str | None) -> None:
    if split is None:
        return
    name = re.match(r"^[^\[+]+", split.strip())
    base = name.group(0).strip() if name else split
    if base not in local_splits(folder):
        raise DatasetLoadError(f"{folder}: no split {base!r} (splits present: {', '.join(local_splits(folder))})")


def split_shards(folder: Path, split: str) -> list[Path]:
    """The Parquet shards of one split of a dataset folder, in row order."""
    _check_split(folder, split)
    return sorted((folder / "data").glob(f"{split}-*.parquet"))


# ------------------------------------------------------------------------------------- decoding


def decode_masks(segments: list[Mapping]) -> list[np.ndarray]:
    """Each segment's RLE as a (height, width) bool array, equal to pycocotools' ``decode``
    (:func:`mixedparts.masks.decode_all`: a row's masks are expanded together, as views into one
    buffer). A malformed RLE raises :class:`MaskError` (pycocotools would raise or return garbage).
    """
    try:
        return decode_all([s["mask"] for s in segments])
    except InvalidMask as error:
        label = segments[error.index].get("label", "?")
        raise MaskError(f"segment {error.index} ({label!r}): invalid RLE mask: {error.reason}") from None


class Decoder:
    """Adds ``pil_images`` and/or ``masks`` to rows or batches; picklable (DataLoader workers).

    Use it with plain ``datasets`` too: ``ds.set_transform(Decoder(resolver, images=True, masks=True))``
    or, on an ``IterableDataset``, ``ds.map(Decoder(...).example)``.
    """

    def __init__(self, resolver: ImageResolver | None = None, images: bool = False, masks: bool = False):
        if images and resolver is None:
            raise ValueError("decoding images needs an ImageResolver")
        self.resolver = resolver
        self.images = images
        self.masks = masks

    def example(self, row: dict) -> dict:
        """One row (a dict of fields) -> the row with the decoded columns added."""
        out = dict(row)
        if self.images and all(c in row for c in ("source", "split", "images")):
            out[IMAGES_COLUMN] = self.resolver.open_all(row["source"], row["split"], row["images"])
        if self.masks and "segments" in row:
            out[MASKS_COLUMN] = decode_masks(row["segments"])
        return out

    def __call__(self, batch: dict) -> dict:
        """A batch (a dict of columns) -> the batch with the decoded columns added (``set_transform``)."""
        out = dict(batch)
        # Columns left out with select_columns / remove_columns turn the matching decoding off.
        if self.images and all(c in batch for c in ("source", "split", "images")):
            out[IMAGES_COLUMN] = [self.resolver.open_all(source, split, images) for source, split, images
                                  in zip(batch["source"], batch["split"], batch["images"])]
        if self.masks and "segments" in batch:
            # Row by row: one buffer per row (a buffer per batch of 64 rows runs to 100 MB at COCO sizes).
            out[MASKS_COLUMN] = [decode_masks(segments) for segments in batch["segments"]]
        return out


def decode_row(row: Mapping, image_roots: Mapping | ImageResolver | None = None, *, images: bool = True,
               masks: bool = True, dataset_dir: str | os.PathLike | None = None) -> dict:
    """Decode one plain row (e.g. from :func:`mixedparts.metrics.ground_truth.read_dataset_split`)."""
    if isinstance(image_roots, ImageResolver):
        resolver = image_roots
    else:
        resolver = image_resolver(dataset_dir, image_roots) if dataset_dir is not None else ImageResolver(
            None, image_roots, None)
    return Decoder(resolver, images=images, masks=masks).example(dict(row))


# ------------------------------------------------------------------------------------- loading


def load_dataset(path: str | os.PathLike | None = DEFAULT_NAME, split: str | None = None, *,
                 streaming: bool = False, decode_images: bool = False, decode_masks: bool = False,
                 image_roots: Mapping | None = None, cache_dir: str | os.PathLike | None = None,
                 revision: str | None = None, token: str | bool | None = None, check_image_roots: bool = True,
                 **kwargs):
    """Load MixedParts as a ``datasets.Dataset`` (``DatasetDict`` when ``split`` is None;
    ``IterableDataset`` / ``IterableDatasetDict`` with ``streaming=True``).

    ``path``: ``"mixedparts"`` (the default location, ``$MIXEDPARTS_HOME/mixedparts``), a dataset
    folder written by ``mixedparts build``, or a Hub repo id (``org/name``).
    ``decode_images``: add ``pil_images`` (RGB PIL images), resolved against ``manifest.json``'s image
    roots, overridden per source by ``image_roots`` (``{source: root}`` or ``{source: {split: root}}``;
    a root may also be the release folder given to ``mixedparts build``). A Hub dataset records no
    roots: pass ``image_roots``. With ``check_image_roots`` the roots of the manifest's sources are
    checked up front (for the requested split); a missing file is reported when its row is read.
    ``decode_masks``: add ``masks`` (one bool array per segment, at image size).
    Other keyword arguments go to ``datasets.load_dataset`` (e.g. ``num_proc``, ``keep_in_memory``).
    """
    import datasets

    where = resolve(path)
    local = isinstance(where, Path)
    if local:
        _check_split(where, split)
    resolver = image_resolver(where, image_roots)
    if decode_images and check_image_roots and local:
        manifest_sources = set(resolver.manifest_roots) | set(resolver.user_roots)
        splits = [re.match(r"^[^\[+]+", split).group(0).strip()] if split else local_splits(where)
        for source in sorted(manifest_sources):
            for s in splits:
                per_split = resolver.manifest_roots.get(source)
                if isinstance(per_split, Mapping) and s not in per_split and source not in resolver.user_roots:
                    continue  # the source has no images in this split
                resolver.check_root(source, s)

    load_kwargs = dict(kwargs)
    if cache_dir is not None:
        load_kwargs["cache_dir"] = str(cache_dir)
    elif local and not streaming:
        load_kwargs["cache_dir"] = str(content_cache_dir(where))
    if revision is not None:
        load_kwargs["revision"] = revision
    if token is not None:
        load_kwargs["token"] = token
    try:
        dataset = datasets.load_dataset(str(where), split=split, streaming=streaming, **load_kwargs)
    except MixedPartsError:
        raise
    except Exception as error:  # datasets raises many unrelated types for a missing, offline or broken dataset
        hint = "" if local else " (a Hub dataset needs network access or a populated HF cache; HF_HUB_OFFLINE=1 " \
                                "allows only the cache)"
        raise DatasetLoadError(f"{where}: cannot load{f' split {split!r}' if split else ''}: "
                               f"{type(error).__name__}: {error}{hint}") from error
    if not (decode_images or decode_masks):
        return dataset
    decoder = Decoder(resolver, images=decode_images, masks=decode_masks)
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        for name in list(dataset):
            dataset[name] = _with_decoder(dataset[name], decoder)
        return dataset
    return _with_decoder(dataset, decoder)


def content_cache_dir(folder: Path) -> Path:
    """A ``datasets`` cache folder keyed by the shards' content.

    ``datasets`` keys its cache of a local folder on the path, not on what the files hold, so a
    folder rebuilt in place (deleted, then built with other options) would load the old rows. The
    manifest's shard checksums (or, without a manifest, each shard's size and mtime) name the cache.
    """
    import hashlib

    from datasets import config

    manifest = folder / "manifest.json"
    if manifest.is_file():
        key = json.dumps(json.loads(manifest.read_text()).get("shards", {}), sort_keys=True)
    else:
        key = "\n".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                        for p in sorted((folder / "data").glob("*.parquet")))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(config.HF_DATASETS_CACHE) / "mixedparts" / digest


def _with_decoder(dataset, decoder: Decoder):
    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        return dataset.map(decoder.example)
    dataset.set_transform(decoder)
    return dataset


# ------------------------------------------------------------------------------------- plain rows


def iter_rows(path: str | os.PathLike | None, split: str, columns: Iterable[str] | None = None, *,
              task: str | None = None, limit: int | None = None) -> Iterator[dict]:
    """The rows of one split as plain dicts, in shard order: the read path of scoring, the baselines,
    Calico and the export commands (``load_dataset`` is the ``datasets`` view of the same shards).

    ``path`` is a dataset folder, ``"mixedparts"`` (the default location) or a Hub repo id (streamed,
    no ``datasets`` cache for local folders); ``columns`` default to the schema's sample fields;
    ``task`` keeps the rows of one task; reading stops after ``limit`` rows. Images and masks stay
    records: :func:`decode_row` (with :func:`image_resolver`) opens and decodes them.
    """
    from mixedparts.schema import SAMPLE_FIELDS

    columns = list(columns or SAMPLE_FIELDS)
    needed = columns + [c for c in ("task",) if task and c not in columns]
    left = limit
    if left is not None and left <= 0:
        return
    for table in iter_tables(path, [split], needed):
        if task:
            import pyarrow.compute as pc

            table = table.filter(pc.equal(table["task"], task))
        if left is not None:
            table = table.slice(0, left)
            left -= table.num_rows
        yield from table.select(columns).to_pylist()
        if left == 0:
            return


def read_rows(path: str | os.PathLike | None, split: str, columns: Iterable[str] | None = None,
              task: str | None = None, *, limit: int | None = None) -> list[dict]:
    """:func:`iter_rows` as a list."""
    return list(iter_rows(path, split, columns, task=task, limit=limit))


def image_resolver(path: str | os.PathLike | None, image_roots: Mapping | None = None) -> ImageResolver:
    """Where the images of the dataset at ``path`` are: its ``manifest.json`` roots (none for a Hub id),
    overridden per source by ``image_roots``. ``path`` is located as the rows are (:func:`resolve`)."""
    where = resolve(path)
    return ImageResolver.for_dataset(where, image_roots) if isinstance(where, Path) else \
        ImageResolver(None, image_roots, None)


def iter_tables(path: str | os.PathLike | None, splits: Iterable[str] | None, columns: list[str],
                batch_rows: int = 65536) -> Iterator:
    """pyarrow tables of the given columns (nested paths like ``segments.list.element.label`` allowed
    for local folders), split by split, shard by shard; a Hub dataset is streamed through ``datasets``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = resolve(path)
    if isinstance(where, Path):
        names = local_splits(where) if splits is None else list(splits)
        for split in names:
            for shard in split_shards(where, split):
                try:
                    parquet = pq.ParquetFile(shard)
                    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                        yield pa.Table.from_batches([batch])
                except (OSError, pa.ArrowException) as error:
                    raise DatasetLoadError(f"{shard}: cannot read: {error}") from None
        return
    import datasets

    top = sorted({c.split(".")[0] for c in columns})
    try:
        streams = datasets.load_dataset(where, streaming=True)
        names = list(streams) if splits is None else list(splits)
        for split in names:
            stream = streams[split].select_columns(top).with_format("arrow")
            for table in stream.iter(batch_size=batch_rows):
                yield table
    except MixedPartsError:
        raise
    except Exception as error:
        raise DatasetLoadError(f"{where}: cannot stream: {type(error).__name__}: {error}") from error


# ------------------------------------------------------------------------------------- command line


def add_dataset_arguments(parser, split: str | None = "test", image_roots: bool = True) -> None:
    """``--data``, ``--split`` and ``--image-root`` as the show / export / stats commands take them."""
    parser.add_argument("--data", default=DEFAULT_NAME, metavar="DIR_OR_ID",
                        help="a dataset folder written by `mixedparts build`, a Hub repo id, or 'mixedparts' for the "
                             "default location ($MIXEDPARTS_HOME/mixedparts)")
    if split is not None:
        parser.add_argument("--split", default=split, help="the split to read")
    if image_roots:
        parser.add_argument("--image-root", action="append", default=[], metavar="SOURCE=PATH",
                            help="image root of a source, overriding manifest.json (repeatable), e.g. "
                                 "paco_lvis=/data/coco or partimagenet=/data/PartImageNet")


def resolver_from_args(args) -> ImageResolver:
    from mixedparts.images import parse_root_options

    return image_resolver(args.data, parse_root_options(getattr(args, "image_root", None)))


# ------------------------------------------------------------------------------------- picking rows


def row_positions(path: str | os.PathLike | None, split: str, task: str | None = None,
                  sample_id: str | None = None) -> np.ndarray:
    """Positions (in the split) of the rows of ``task`` / with ``sample_id`` (all rows when neither is given)."""
    import pyarrow.parquet as pq

    where = resolve(path)
    columns = [c for c, v in (("task", task), ("sample_id", sample_id)) if v is not None]
    if isinstance(where, Path):
        shards = split_shards(where, split)
        if not columns:
            return np.arange(sum(pq.ParquetFile(s).metadata.num_rows for s in shards))
        import pyarrow as pa

        table = pa.concat_tables(pq.read_table(s, columns=columns) for s in shards)
    else:
        dataset = _hub_split(where, split)
        if not columns:
            return np.arange(len(dataset))
        table = dataset.select_columns(columns).with_format("arrow")[:]
    keep = np.ones(table.num_rows, dtype=bool)
    if task is not None:
        keep &= np.asarray(table["task"].to_pylist()) == task
    if sample_id is not None:
        keep &= np.asarray(table["sample_id"].to_pylist()) == sample_id
    return np.flatnonzero(keep)


def rows_at(path: str | os.PathLike | None, split: str, positions: Iterable[int]) -> list[dict]:
    """The rows at ``positions`` of a split, in that order (only the shards holding them are read)."""
    import pyarrow.parquet as pq

    positions = [int(p) for p in positions]
    where = resolve(path)
    if not isinstance(where, Path):
        dataset = _hub_split(where, split)
        return [dataset[p] for p in positions]
    shards = split_shards(where, split)
    starts = np.cumsum([0] + [pq.ParquetFile(s).metadata.num_rows for s in shards])
    found: dict[int, dict] = {}
    for n, shard in enumerate(shards):
        local = sorted({p - int(starts[n]) for p in positions if starts[n] <= p < starts[n + 1]})
        if local:
            for p, row in zip(local, pq.read_table(shard).take(local).to_pylist()):
                found[p + int(starts[n])] = row
    missing = [p for p in positions if p not in found]
    if missing:
        raise DatasetLoadError(f"{where}: split {split!r} has {int(starts[-1])} rows; no row {missing[0]}")
    return [found[p] for p in positions]


def _hub_split(repo_id: str, split: str):
    import datasets

    try:
        return datasets.load_dataset(repo_id, split=split)
    except Exception as error:
        raise DatasetLoadError(f"{repo_id}: cannot load split {split!r}: {type(error).__name__}: {error}") from error
