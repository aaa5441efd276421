"""The predictions file: reading, writing and validating it (format below).

One JSON document::

    {"format": "mixedparts-predictions/1", "model": "...", "split": "test",
     "predictions": [{"sample_id": "...", "text": "...",
                      "segments": [{"label": "leg", "image_index": 0,
                                    "mask": {"size": [h, w], "counts": "..."}, "score": 1.0}]}]}

or JSON Lines: the same header without ``predictions`` on the first line, then one prediction per
line. A GLaMM GCG prediction folder (one JSON file per image or per sample, see
:func:`read_gcg_folder`) is read into the same structure, so GLaMM/LISA outputs can be scored.

Every problem is reported as a :class:`PredictionsError` naming the file, the sample id and the
field. Predictions are kept as the plain validated dicts of the file: nothing is copied or decoded.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


from mixedparts import markup
from mixedparts.atomic import atomic_output
from mixedparts.errors import MixedPartsError
from mixedparts.forking import available_cores, can_fork, chunk_bounds, fork_map
from mixedparts.gc_pause import cyclic_gc_paused
from mixedparts.masks import first_invalid, validation_error
from mixedparts.schema import PREDICTED_SEGMENT_FIELDS, PREDICTION_FIELDS, PREDICTIONS_FORMAT

FILE_FORMATS = ("auto", "json", "jsonl", "gcg")
GCG_UNIT_ID = re.compile(r"^(?P<sample_id>.+)_IMAGE(?P<image>[1-9][0-9]*)$")
"""A GCG file for one image of a sample is named (and has ``image_id``) ``<sample_id>_IMAGE<k>``, k 1-based."""


class PredictionsError(MixedPartsError):
    """A predictions file that cannot be scored; the message names the file, the sample and the field."""

    def __init__(self, path: str | os.PathLike, message: str, *, sample_id: object = None, field: str | None = None,
                 where: str | None = None):
        self.path = str(path)
        self.sample_id = sample_id
        self.field = field
        self.where = where
        parts = [self.path]
        if where:
            parts.append(where)
        if sample_id is not None:
            parts.append(f"sample {sample_id!r}" if isinstance(sample_id, str) else f"sample id {sample_id!r}")
        if field:
            parts.append(f"field '{field}'")
        parts.append(message)
        super().__init__(": ".join(parts))


@dataclass
class Predictions:
    """A validated predictions file: ``by_sample`` maps each sample id to its prediction dict, in file order."""

    path: str
    format: str  # "json", "jsonl" or "gcg"
    by_sample: dict[str, dict]
    model: str | None = None
    split: str | None = None
    mismatched: set[str] = field(default_factory=set)
    """Samples whose answer's ``[SEG]`` count differs from their number of masks (docs/metrics.md A12)."""
    warnings: list[str] = field(default_factory=list)
    """What was read but ignored (unknown keys), one line per kind; evaluation reports them."""

    @property
    def mask_count(self) -> int:
        return sum(len(p["segments"]) for p in self.by_sample.values())


# ---------------------------------------------------------------- reading


@cyclic_gc_paused()  # millions of small acyclic dicts and lists (see mixedparts.gc_pause)
def read_predictions(path: str | os.PathLike, format: str = "auto",
                     images: Mapping[str, list[tuple[int, int]]] | None = None,
                     workers: int | None = None) -> Predictions:
    """Read and validate a predictions file (JSON or JSON Lines) or, with ``format="gcg"``, a GCG folder.

    ``images`` (sample id -> [(height, width), ...] per image) is needed for GCG folders only, to
    route masks to images. Checks that need the ground truth (unknown ids, image sizes) are in
    :func:`check_against_ground_truth`. The masks of a large file are validated in ``workers`` forked
    processes (default: one per available core; 1: none).
    """
    if is_gcg(path, format):
        if images is None:
            raise ValueError("reading a GCG folder needs the ground truth's image sizes")
        return read_gcg_folder(path, images)
    return validate_predictions(parse_predictions(path, format), workers)


def is_gcg(path: str | os.PathLike, format: str = "auto") -> bool:
    """Whether ``path`` is read as a GCG folder (``format="gcg"``, or a folder with ``"auto"``)."""
    if format not in FILE_FORMATS:
        raise ValueError(f"unknown predictions format {format!r}; expected one of {FILE_FORMATS}")
    return format == "gcg" or (format == "auto" and Path(path).is_dir())


@dataclass
class ParsedPredictions:
    """A predictions file parsed but not yet checked: its header and its predictions, each with where
    it stands in the file (what an error names)."""

    path: Path
    format: str  # "json" or "jsonl"
    model: str | None
    split: str | None
    entries: list[tuple[str, object]]


@cyclic_gc_paused()
def parse_predictions(path: str | os.PathLike, format: str = "auto") -> ParsedPredictions:
    """Read and parse a JSON or JSON Lines predictions file, checking its header only.

    The first half of :func:`read_predictions`, apart so that it can overlap other reading (it forks
    nothing); :func:`validate_predictions` is the second.
    """
    path = Path(path)
    if is_gcg(path, format):
        raise ValueError(f"{path}: a GCG folder is read with read_gcg_folder, not parsed as a file")
    if not path.exists():
        raise PredictionsError(path, "no such file")
    if path.is_dir():
        raise PredictionsError(path, "is a folder; pass --format gcg to read a GLaMM GCG prediction folder")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise PredictionsError(path, f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise PredictionsError(path, f"cannot read: {error.strerror}") from None
    if not text.strip():
        raise PredictionsError(path, "empty file")
    if format == "jsonl" or (format == "auto" and path.suffix == ".jsonl"):
        return _parse_jsonl(path, text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg != "Extra data":
            raise PredictionsError(path, f"not valid JSON: {error.msg}",
                                   where=f"line {error.lineno} column {error.colno}") from None
        first, one_line = _first_value(text)
        if isinstance(first, dict) and "predictions" in first:
            raise PredictionsError(path, "not valid JSON: unexpected data after the end of the predictions "
                                   "document (a JSON file holds one document)",
                                   where=f"line {error.lineno} column {error.colno}") from None
        if format == "auto" and one_line:
            return _parse_jsonl(path, text)  # more than one JSON value, the first on its own line: JSON Lines
        raise PredictionsError(path, "not valid JSON: unexpected data after the end of the first JSON value",
                               where=f"line {error.lineno} column {error.colno}") from None
    except (ValueError, RecursionError) as error:  # e.g. nesting or integer-length limits
        raise PredictionsError(path, f"not valid JSON: {_reason(error)}") from None
    if not isinstance(document, dict):
        raise PredictionsError(path, f"must hold a JSON object with 'format' and 'predictions', "
                               f"got {_json_type(document)}")
    model, split = _check_header(path, document)
    if "predictions" not in document:
        raise PredictionsError(path, "missing field 'predictions'")
    items = document["predictions"]
    if not isinstance(items, list):
        raise PredictionsError(path, f"'predictions' must be a list, got {_json_type(items)}", field="predictions")
    return ParsedPredictions(path, "json", model, split,
                             [(f"predictions[{i}]", item) for i, item in enumerate(items)])


def validate_predictions(parsed: ParsedPredictions, workers: int | None = None) -> Predictions:
    """Check a parsed file's predictions (in ``workers`` forked processes when large): see :func:`read_predictions`."""
    return _validated(parsed.path, parsed.format, parsed.model, parsed.split, parsed.entries, workers)


def predictions_from_list(items: Iterable[Mapping], model: str | None = None, split: str | None = None,
                          path: str = "<predictions>", workers: int | None = None) -> Predictions:
    """Validate predictions held in memory (dicts as in the file) as :func:`read_predictions` would."""
    entries = [(f"predictions[{i}]", item) for i, item in enumerate(items)]
    return _validated(Path(path), "json", model, split, entries, workers)


def _parse_jsonl(path: Path, text: str) -> ParsedPredictions:
    entries = []
    header = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            reason = ("unexpected data after the end of the JSON value (JSON Lines hold one value per line)"
                      if error.msg == "Extra data" else error.msg)
            raise PredictionsError(path, f"not valid JSON: {reason} (column {error.colno})",
                                   where=f"line {number}") from None
        except (ValueError, RecursionError) as error:
            raise PredictionsError(path, f"not valid JSON: {_reason(error)}", where=f"line {number}") from None
        if header is None:
            if not isinstance(value, dict):
                raise PredictionsError(path, f"the first line must be the header object with 'format', "
                                       f"got {_json_type(value)}", where=f"line {number}")
            if "predictions" in value:
                raise PredictionsError(path, "a JSON Lines header must not hold 'predictions'; write one "
                                       "prediction per line after it", where=f"line {number}", field="predictions")
            header = value
            model, split = _check_header(path, header, where=f"line {number}")
        else:
            entries.append((f"line {number}", value))
    return ParsedPredictions(path, "jsonl", model, split, entries)


def _check_header(path: Path, header: dict, where: str | None = None) -> tuple[str | None, str | None]:
    if "format" not in header:
        raise PredictionsError(path, f"missing field 'format' (expected {PREDICTIONS_FORMAT!r})", where=where)
    if header["format"] != PREDICTIONS_FORMAT:
        raise PredictionsError(path, f"format must be {PREDICTIONS_FORMAT!r}, got {header['format']!r}",
                               where=where, field="format")
    for key in ("model", "split"):
        if key in header and header[key] is not None and not isinstance(header[key], str):
            raise PredictionsError(path, f"'{key}' must be a string, got {_json_type(header[key])}", where=where,
                                   field=key)
    return header.get("model"), header.get("split")


PARALLEL_FROM = 2000
"""Predictions from which their checks run in forked workers (fewer cost more to fork than to check)."""


def _validated(path: Path, file_format: str, model: str | None, split: str | None,
               entries: list[tuple[str, object]], workers: int | None = None) -> Predictions:
    """Check every prediction, then every mask, in file order; the first problem found is the error.

    The checks run over chunks of the file in forked workers; each chunk reports its first bad
    prediction, or else its first bad mask, and which reports count is decided here so that the error is
    the one a single pass would raise (structure and duplicate ids first, then masks).
    """
    workers = workers or available_cores()
    parallel = len(entries) >= PARALLEL_FROM and can_fork(workers)
    bounds = chunk_bounds(len(entries), 2 * workers) if parallel else [(0, len(entries))]
    chunks = fork_map(_check_entries, (path, entries), bounds, workers if parallel else 1)
    first_bad = next((chunk.first_bad for chunk in chunks if chunk.first_bad is not None), None)
    by_sample: dict[str, dict] = {}
    where_of: dict[str, str] = {}
    for where, item in entries[:len(entries) if first_bad is None else first_bad]:
        sample_id = item["sample_id"]
        if sample_id in by_sample:
            raise PredictionsError(path, f"duplicate sample id (first at {where_of[sample_id]})", where=where,
                                   sample_id=sample_id, field="sample_id")
        by_sample[sample_id] = item
        where_of[sample_id] = where
    if first_bad is not None:
        _check_prediction(path, *entries[first_bad])  # raises the chunk's error
        raise AssertionError(f"{path}: {entries[first_bad][0]} failed a check in a worker only")
    for chunk in chunks:
        if chunk.first_bad_mask is not None:
            i, j = chunk.first_bad_mask
            where, item = entries[i]
            raise PredictionsError(path, validation_error(item["segments"][j]["mask"]), where=where,
                                   sample_id=item["sample_id"], field=f"segments[{j}].mask")
    unknown = _UnknownKeys()
    for chunk in chunks:
        unknown.merge(chunk.unknown)
    mismatched = {sample_id for chunk in chunks for sample_id in chunk.mismatched}
    return Predictions(str(path), file_format, by_sample, model, split, mismatched, unknown.warnings(path))


@dataclass
class _EntryChecks:
    """What one chunk of a file's predictions showed: its first bad prediction (an index into the
    entries) or else its first bad mask (entry index, segment index); its unknown keys; the samples
    whose ``[SEG]`` count differs from their masks."""

    first_bad: int | None = None
    first_bad_mask: tuple[int, int] | None = None
    unknown: dict = field(default_factory=dict)
    mismatched: list[str] = field(default_factory=list)


def _check_entries(job: tuple[Path, list[tuple[str, object]]], bounds: tuple[int, int]) -> _EntryChecks:
    path, entries = job
    start, stop = bounds
    unknown = _UnknownKeys()
    mismatched = []
    masks, owners = [], []
    for i in range(start, stop):
        where, item = entries[i]
        try:
            sample_id = _check_prediction(path, where, item)
        except PredictionsError:
            return _EntryChecks(first_bad=i)
        unknown.note(sample_id, item)
        segments = item["segments"]
        if item["text"] and markup.seg_count(item["text"]) != len(segments):
            mismatched.append(sample_id)
        for j, segment in enumerate(segments):
            masks.append(segment["mask"])
            owners.append((i, j))
    bad = first_invalid(masks, workers=1)
    return _EntryChecks(first_bad_mask=None if bad is None else owners[bad], unknown=unknown.found,
                        mismatched=mismatched)


_PREDICTION_KEYS = frozenset(PREDICTION_FIELDS)
_SEGMENT_KEYS = frozenset(PREDICTED_SEGMENT_FIELDS) | {"score"}


class _UnknownKeys:
    """Keys the scorer ignores, gathered over a file: a typo such as "lable" would otherwise score as empty."""

    def __init__(self):
        self.found: dict[str, dict[str, list]] = {"prediction": {}, "segment": {}}

    def note(self, sample_id: str, item: dict) -> None:
        if not item.keys() <= _PREDICTION_KEYS:
            self._add("prediction", sample_id, item.keys() - _PREDICTION_KEYS)
        for segment in item["segments"]:
            if not segment.keys() <= _SEGMENT_KEYS:
                self._add("segment", sample_id, segment.keys() - _SEGMENT_KEYS)

    def merge(self, found: dict[str, dict[str, list]]) -> None:
        """Add what another :class:`_UnknownKeys` found later in the file."""
        for kind, keys in found.items():
            for key, (count, first) in keys.items():
                self.found[kind].setdefault(key, [0, first])[0] += count

    def _add(self, kind: str, sample_id: str, keys) -> None:
        for key in keys:
            entry = self.found[kind].setdefault(key, [0, sample_id])
            entry[0] += 1

    def warnings(self, path: Path) -> list[str]:
        lines = []
        for kind, known in (("prediction", _PREDICTION_KEYS), ("segment", _SEGMENT_KEYS)):
            found = self.found[kind]
            if found:
                keys = ", ".join(f"{key!r} ({count} {kind}{'s' if count > 1 else ''}, first in sample {first!r})"
                                 for key, (count, first) in sorted(found.items()))
                lines.append(f"{path}: unknown {kind} keys ignored: {keys}; a {kind} has "
                             f"{', '.join(sorted(known))}")
        return lines


def _check_prediction(path: Path, where: str, item: object) -> str:
    if not isinstance(item, dict):
        raise PredictionsError(path, f"a prediction must be an object, got {_json_type(item)}", where=where)
    sample_id = item.get("sample_id")
    if "sample_id" not in item:
        raise PredictionsError(path, "missing field 'sample_id'", where=where)
    if not isinstance(sample_id, str) or not sample_id:
        raise PredictionsError(path, f"'sample_id' must be a non-empty string, got {_short(sample_id)}",
                               where=where, field="sample_id")
    for key in PREDICTION_FIELDS:
        if key not in item:
            raise PredictionsError(path, f"missing field '{key}'", where=where, sample_id=sample_id, field=key)
    if not isinstance(item["text"], str):
        raise PredictionsError(path, f"must be a string, got {_json_type(item['text'])}", where=where,
                               sample_id=sample_id, field="text")
    _check_text(path, item["text"], where=where, sample_id=sample_id, field="text")
    segments = item["segments"]
    if not isinstance(segments, list):
        raise PredictionsError(path, f"must be a list, got {_json_type(segments)}", where=where,
                               sample_id=sample_id, field="segments")
    _check_segments(path, where, sample_id, segments)
    return sample_id


def _check_segments(path: Path, where: str, sample_id: str, segments: list) -> None:
    for j, segment in enumerate(segments):
        # The common case in a few type tests; anything else takes the checks that name the problem.
        if type(segment) is not dict or not _SEGMENT_REQUIRED <= segment.keys():
            _check_segment(path, where, sample_id, j, segment)
            continue
        label, index = segment["label"], segment["image_index"]
        if (type(label) is not str or not (label.isascii() or _is_text(label)) or type(index) is not int
                or index < 0 or ("score" in segment and not _is_finite_number(segment["score"]))):
            _check_segment(path, where, sample_id, j, segment)


def _check_segment(path: Path, where: str, sample_id: str, j: int, segment: object) -> None:
    name = f"segments[{j}]"
    if not isinstance(segment, dict):
        raise PredictionsError(path, f"must be an object, got {_json_type(segment)}", where=where,
                               sample_id=sample_id, field=name)
    for key in PREDICTED_SEGMENT_FIELDS:
        if key not in segment:
            raise PredictionsError(path, "missing field", where=where, sample_id=sample_id,
                                   field=f"{name}.{key}")
    label = segment["label"]
    if not isinstance(label, str):
        raise PredictionsError(path, f"label must be a string, got {_json_type(label)}", where=where,
                               sample_id=sample_id, field=f"{name}.label")
    _check_text(path, label, where=where, sample_id=sample_id, field=f"{name}.label")
    index = segment["image_index"]
    if not _is_int(index) or index < 0:
        raise PredictionsError(path, f"image_index must be a non-negative integer, got {_short(index)}",
                               where=where, sample_id=sample_id, field=f"{name}.image_index")
    if "score" in segment:
        score = segment["score"]
        if not _is_number(score) or not math.isfinite(score):
            raise PredictionsError(path, f"score must be a finite number, got {_short(score)}", where=where,
                                   sample_id=sample_id, field=f"{name}.score")


def check_against_ground_truth(predictions: Predictions, images: Mapping[str, list[tuple[int, int]]],
                               split: str | None = None) -> list[str]:
    """Check predictions against the ground truth's samples; return the GT sample ids with no prediction.

    ``images`` maps each sample id of the scored split, in order, to its images' (height, width).
    """
    path = predictions.path
    if split is not None and predictions.split is not None and predictions.split != split:
        raise PredictionsError(path, f"the predictions are for split {predictions.split!r}, but split {split!r} "
                               f"is being scored", field="split")
    for sample_id, prediction in predictions.by_sample.items():
        sizes = images.get(sample_id)
        if sizes is None:
            raise PredictionsError(path, "unknown sample id: not in the ground truth of this split",
                                   sample_id=sample_id, field="sample_id")
        for j, segment in enumerate(prediction["segments"]):
            index = segment["image_index"]
            if index >= len(sizes):
                raise PredictionsError(path, f"image_index {index} is out of range: the sample has {len(sizes)} "
                                       f"images (0..{len(sizes) - 1})", sample_id=sample_id,
                                       field=f"segments[{j}].image_index")
            size = segment["mask"]["size"]
            if (size[0], size[1]) != tuple(sizes[index]):
                raise PredictionsError(path, f"mask size {size[0]}x{size[1]} differs from image {index}'s size "
                                       f"{sizes[index][0]}x{sizes[index][1]} (height x width)",
                                       sample_id=sample_id, field=f"segments[{j}].mask.size")
    return [sample_id for sample_id in images if sample_id not in predictions.by_sample]


# ---------------------------------------------------------------- GLaMM GCG folders


def read_gcg_folder(folder: str | os.PathLike, images: Mapping[str, list[tuple[int, int]]]) -> Predictions:
    """Read a GLaMM GCG prediction folder: ``{image_id}.json`` files with ``image_id``, ``caption``,
    ``phrases`` and ``pred_masks`` (compressed RLE), as GLaMM's ``eval/gcg/infer.py`` writes them.

    ``image_id`` names what the file predicts:
    - ``<sample_id>_IMAGE<k>`` (k 1-based): one image of a sample; ``phrases[i]`` labels
      ``pred_masks[i]``, as in GLaMM.
    - ``<sample_id>``: a whole sample. If the caption keeps the markup with ``[SEG] (IMAGEk)`` tags,
      the i-th ``[SEG]`` routes and labels the i-th mask; otherwise ``phrases[i]`` labels
      ``pred_masks[i]`` and each mask goes to the one image of its size.
    Phrase/mask count mismatches follow docs/metrics.md A12: the first min(n) are paired, extra masks get
    the label "" and extra phrases are dropped; such samples are counted in ``mismatched``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PredictionsError(folder, "a GCG prediction folder must be a directory of JSON files")
    files = sorted(p for p in folder.iterdir() if p.suffix == ".json" and p.is_file())
    if not files:
        raise PredictionsError(folder, "holds no .json files")
    by_sample: dict[str, dict] = {}
    whole_sample: dict[str, Path] = {}
    unit_files: dict[tuple[str, int], Path] = {}
    mismatched = set()
    for file in files:
        record = _gcg_record(file)
        image_id = record.get("image_id", file.stem)
        if not isinstance(image_id, str):
            raise PredictionsError(file, f"'image_id' must be a string, got {_short(image_id)}", field="image_id")
        caption, phrases, masks = _gcg_fields(file, image_id, record)
        unit = GCG_UNIT_ID.match(image_id)
        if image_id in images:
            sample_id = image_id
            if sample_id in whole_sample or any(key[0] == sample_id for key in unit_files):
                raise PredictionsError(file, "duplicate sample id: another file predicts this sample",
                                       sample_id=sample_id, field="image_id")
            whole_sample[sample_id] = file
            segments, mismatch = _gcg_sample_segments(file, sample_id, caption, phrases, masks, images[sample_id])
            by_sample[sample_id] = {"sample_id": sample_id, "text": caption, "segments": segments}
        elif unit and unit["sample_id"] in images:
            sample_id, index = unit["sample_id"], int(unit["image"]) - 1
            if sample_id in whole_sample or (sample_id, index) in unit_files:
                raise PredictionsError(file, f"duplicate: another file predicts image {index + 1} of this sample",
                                       sample_id=sample_id, field="image_id")
            if index >= len(images[sample_id]):
                raise PredictionsError(file, f"image {index + 1} is out of range: the sample has "
                                       f"{len(images[sample_id])} images", sample_id=sample_id, field="image_id")
            unit_files[(sample_id, index)] = file
            labels, mismatch = _paired_labels(phrases, len(masks))
            prediction = by_sample.setdefault(sample_id, {"sample_id": sample_id, "text": "", "segments": []})
            prediction["text"] = " ".join(t for t in (prediction["text"], caption) if t)
            prediction["segments"].extend({"label": label, "image_index": index, "mask": mask}
                                          for label, mask in zip(labels, masks))
        else:
            raise PredictionsError(file, "unknown sample id: image_id is neither a sample id of this split nor "
                                   "<sample_id>_IMAGE<k>", sample_id=image_id, field="image_id")
        if mismatch:
            mismatched.add(sample_id)
    # Per-image files merge into one prediction per sample; list its segments by image whatever the file order.
    for sample_id, prediction in by_sample.items():
        if sample_id not in whole_sample:
            prediction["segments"].sort(key=lambda s: s["image_index"])
    return Predictions(str(folder), "gcg", by_sample, model=folder.name, mismatched=mismatched)


def _gcg_record(file: Path) -> dict:
    try:
        record = json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise PredictionsError(file, f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise PredictionsError(file, f"not valid JSON: {error.msg}",
                               where=f"line {error.lineno} column {error.colno}") from None
    except (ValueError, RecursionError) as error:
        raise PredictionsError(file, f"not valid JSON: {_reason(error)}") from None
    if not isinstance(record, dict):
        raise PredictionsError(file, f"must hold a JSON object, got {_json_type(record)}")
    # GLaMM's evaluate.py also accepts {image_id: {...}}: one key wrapping the record.
    if len(record) == 1:
        (inner,) = record.values()
        if isinstance(inner, dict) and "pred_masks" in inner:
            record = inner
    return record


def _gcg_fields(file: Path, image_id: str, record: dict) -> tuple[str, list[str], list[dict]]:
    caption = record.get("caption", "")
    if not isinstance(caption, str):
        raise PredictionsError(file, f"must be a string, got {_json_type(caption)}", sample_id=image_id,
                               field="caption")
    for key in ("phrases", "pred_masks"):
        if key not in record:
            raise PredictionsError(file, "missing field", sample_id=image_id, field=key)
        if not isinstance(record[key], list):
            raise PredictionsError(file, f"must be a list, got {_json_type(record[key])}", sample_id=image_id,
                                   field=key)
    _check_text(file, caption, sample_id=image_id, field="caption")
    for i, phrase in enumerate(record["phrases"]):
        if not isinstance(phrase, str):
            raise PredictionsError(file, f"label must be a string, got {_json_type(phrase)}", sample_id=image_id,
                                   field=f"phrases[{i}]")
        _check_text(file, phrase, sample_id=image_id, field=f"phrases[{i}]")
    bad = first_invalid(record["pred_masks"])
    if bad is not None:
        raise PredictionsError(file, validation_error(record["pred_masks"][bad]), sample_id=image_id,
                               field=f"pred_masks[{bad}]")
    return caption, record["phrases"], record["pred_masks"]


def _paired_labels(phrases: list[str], mask_count: int) -> tuple[list[str], bool]:
    labels = [p.strip() for p in phrases[:mask_count]]
    return labels + [""] * (mask_count - len(labels)), len(phrases) != mask_count


def _gcg_sample_segments(file: Path, sample_id: str, caption: str, phrases: list[str], masks: list[dict],
                         sizes: list[tuple[int, int]]) -> tuple[list[dict], bool]:
    tagged = [(p.phrase, index) for p in markup.parse(caption) for index in p.image_indices]
    if tagged:
        mismatch = len(tagged) != len(masks)
        routed = tagged[:len(masks)]
        labels = [label for label, _ in routed] + [""] * (len(masks) - len(routed))
        indices: list[int | None] = [index for _, index in routed] + [None] * (len(masks) - len(routed))
    else:
        labels, mismatch = _paired_labels(phrases, len(masks))
        indices = [None] * len(masks)
    segments = []
    for i, (label, index, mask) in enumerate(zip(labels, indices, masks)):
        if index is None:
            size = tuple(mask["size"])
            matching = [k for k, image_size in enumerate(sizes) if tuple(image_size) == size]
            if len(matching) != 1:
                reason = "no image of the sample has" if not matching else "several images of the sample have"
                raise PredictionsError(file, f"cannot route the mask to an image: {reason} its size "
                                       f"{size[0]}x{size[1]}; tag the caption's [SEG]s with (IMAGEk) or write one "
                                       f"file per image named {sample_id}_IMAGE<k>.json", sample_id=sample_id,
                                       field=f"pred_masks[{i}]")
            index = matching[0]
        segments.append({"label": label.strip(), "image_index": index, "mask": mask})
    return segments, mismatch


# ---------------------------------------------------------------- writing


def write_predictions(path: str | os.PathLike, predictions: Iterable[Mapping], model: str | None = None,
                      split: str | None = None, *, jsonl: bool | None = None) -> Path:
    """Write a predictions file atomically; JSON Lines when ``jsonl`` or the name ends in ``.jsonl``.

    ``predictions`` are dicts with ``sample_id``, ``text`` and ``segments`` (each ``label``,
    ``image_index``, ``mask`` and optionally ``score``); they are checked as a reader would.
    """
    path = Path(path)
    if jsonl is None:
        jsonl = path.suffix == ".jsonl"
    items = [dict(p) for p in predictions]
    header = {"format": PREDICTIONS_FORMAT, "model": model, "split": split}
    seen = set()
    for i, item in enumerate(items):
        sample_id = _check_prediction(path, f"predictions[{i}]", item)
        if sample_id in seen:
            raise PredictionsError(path, "duplicate sample id", sample_id=sample_id, field="sample_id")
        seen.add(sample_id)
    with atomic_output(path) as out:
        if jsonl:
            out.write(json.dumps(header, allow_nan=False) + "\n")
            for item in items:
                out.write(json.dumps(item, allow_nan=False, separators=(",", ":")) + "\n")
        else:
            json.dump({**header, "predictions": items}, out, allow_nan=False, separators=(",", ":"))
    return path


# ---------------------------------------------------------------- helpers


def _check_text(path: Path, text: str, **context) -> None:
    """JSON's ``\\ud800`` escapes decode to lone surrogates: Python strings that are not Unicode text,
    which tokenizers reject with a traceback."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PredictionsError(path, f"not valid UTF-8 text: lone surrogate U+{ord(text[error.start]):04X} at "
                               f"character {error.start}", **context) from None


def _first_value(text: str) -> tuple[object, bool]:
    """The first JSON value of ``text``, and whether it ends on the line it starts on (as in JSON Lines)."""
    start = len(text) - len(text.lstrip())
    value, end = json.JSONDecoder().raw_decode(text, start)
    return value, "\n" not in text[start:end]


def _reason(error: BaseException) -> str:
    return "nested too deeply" if isinstance(error, RecursionError) else str(error)


_SEGMENT_REQUIRED = frozenset(PREDICTED_SEGMENT_FIELDS)


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_finite_number(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
