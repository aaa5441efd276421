"""The source releases MixedParts knows: one :class:`SourceSpec` per release, in one table.

Everything that differs between releases outside their reader lives in the spec: the command-line
flag, how release splits become train / val / test, where a release folder keeps each split's
images, which annotation files are checksummed into a build's manifest, what to tell a user whose
image root is missing, and which synthetic writer draws a copy of it. The builder, the image
resolver, the dataset card, the command lines and ``mixedparts synth`` iterate this table; a new
release is a reader, a writer and one :func:`register_source` call (docs/extending.md).

Importing this module is instant (it imports no reader, writer or array library): readers and
writers are named as ``"module:attribute"`` strings and imported when first used, so every
``--help`` can list the flags.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mixedparts.errors import MixedPartsError

HAND_MADE_SOURCE = "synthetic"
"""The ``source`` of rows written by hand (tests, smoke data): no release, reader or image folder."""


@dataclass(frozen=True)
class ReaderOption:
    """A further command-line option of one release, handed to its reader as ``keyword``.

    A folder option (``choices`` None, e.g. PACO-LVIS's ``--coco-images``) is also an
    ``open_readers`` keyword of its own (the flag's argparse name, ``coco_images``) and, when
    ``synth_folder`` is set, a folder that the release's synthetic writer fills.
    """

    flag: str
    keyword: str
    help: str
    choices: tuple[str, ...] | None = None
    default: str | None = None
    synth_folder: str | None = None
    missing: str = ""  # warning printed when the release is given without this folder

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


@dataclass(frozen=True)
class SourceSpec:
    """One source release. ``name`` is what rows carry in ``source``.

    ``splits`` maps every release split the reader reads to the MixedParts split its images go to;
    ``val_from`` names a release split whose images are instead hashed into val at the build's
    val fraction (``BuildOptions.ade_val_fraction``), for releases without a val split.
    ``image_folders`` maps a MixedParts split to the folders, relative to the release root, that
    hold its images (used when a user passes the release root as an image root).
    ``annotation_files`` are glob patterns under the root (``{split}`` is expanded over the release
    splits) whose checksums go into the manifest and the build's fingerprint.
    ``reader`` (``"module:SourceReader subclass"``) is constructed as
    ``Reader(root, **folder options, **choice options, min_area_fraction=, check_images=)``;
    ``writer`` (``"module:function"``) is called as
    ``write(folder, *, scale, seed, images, **synth folders of the folder options)`` and returns the
    drawn record (see :mod:`mixedparts.synth`).
    """

    name: str
    title: str
    flag: str
    help: str
    reader: str
    splits: Mapping[str, str]
    root_hint: str
    example_root: str
    image_folders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    annotation_files: tuple[str, ...] = ()
    val_from: str | None = None
    writer: str | None = None
    synth_folder: str | None = None
    options: tuple[ReaderOption, ...] = ()

    def __post_init__(self):
        bad = sorted(set(self.splits.values()) - {"train", "val", "test"})
        if bad:
            raise ValueError(f"source {self.name!r}: release splits must map to train, val or test, not {bad}")
        if self.val_from is not None and self.val_from not in self.splits:
            raise ValueError(f"source {self.name!r}: val_from {self.val_from!r} is not one of its splits")
        if not self.flag.startswith("--"):
            raise ValueError(f"source {self.name!r}: flag must start with '--', got {self.flag!r}")
        if (self.writer is None) != (self.synth_folder is None):
            raise ValueError(f"source {self.name!r}: give writer and synth_folder together")
        object.__setattr__(self, "splits", MappingProxyType(dict(self.splits)))
        object.__setattr__(self, "image_folders", MappingProxyType({k: tuple(v) for k, v in
                                                                    self.image_folders.items()}))

    @property
    def keyword(self) -> str:
        """The ``open_readers`` keyword (and argparse name) of the release root: ``--ade20k-part234`` -> ``ade20k_part234``."""
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def folder_options(self) -> tuple[ReaderOption, ...]:
        return tuple(o for o in self.options if o.choices is None)

    @property
    def choice_options(self) -> tuple[ReaderOption, ...]:
        return tuple(o for o in self.options if o.choices is not None)

    def load_reader(self) -> type:
        return _load(self.reader, self.name, "reader")

    def load_writer(self):
        if self.writer is None:
            raise MixedPartsError(f"source {self.name!r} has no synthetic writer")
        return _load(self.writer, self.name, "writer")


def _load(reference: str, name: str, what: str):
    module_name, _, attribute = reference.partition(":")
    if not attribute:
        raise MixedPartsError(f"source {name!r}: {what} {reference!r} is not 'module:attribute'")
    return getattr(importlib.import_module(module_name), attribute)


_CHOICES_POLYGONS = ("drop", "pad")

BUILTIN_SOURCES = (
    SourceSpec(
        name="paco_lvis", title="PACO-LVIS", flag="--paco",
        help="PACO-LVIS annotations folder (holds paco_lvis_v1_*.json, directly or under annotations/)",
        reader="mixedparts.sources.paco:PacoReader",
        splits={"train": "train", "val": "val", "test": "test"},
        # File names carry their train2017/ or val2017/ folder: the COCO root itself is the image root.
        image_folders={},
        annotation_files=("paco_lvis_v1_*.json", "annotations/paco_lvis_v1_*.json"),
        root_hint="the COCO 2017 image folder, holding train2017/ and val2017/", example_root="/data/coco",
        writer="mixedparts.synth.paco:write", synth_folder="paco",
        options=(
            ReaderOption("--coco-images", "coco_images", "COCO 2017 image root (holds train2017/, val2017/) that "
                         "PACO-LVIS file names refer to", synth_folder="coco",
                         missing="PACO-LVIS images are not checked and the dataset records no image root for them; "
                         "pass --image-root paco_lvis=COCO_ROOT (or image_roots=) to show or decode those rows"),
            ReaderOption("--paco-short-polygons", "short_polygons", "PACO-LVIS polygons with fewer than 3 points "
                         "(LVIS-style dirt): drop them, or pad them by repeating the last point; counted either way",
                         choices=_CHOICES_POLYGONS, default="drop"),
        )),
    SourceSpec(
        name="partimagenet", title="PartImageNet", flag="--partimagenet",
        help="PartImageNet Seg release root (holds images/, annotations/)",
        reader="mixedparts.sources.partimagenet:PartImageNetReader",
        splits={"train": "train", "val": "val", "test": "test"},
        image_folders={"train": ("images/train",), "val": ("images/val",), "test": ("images/test",)},
        # Only the split files: the per-image {"imgHeight", "imgWidth"} files beside them carry no annotation.
        annotation_files=("annotations/{split}/{split}.json", "annotations/{split}_whole/{split}.json"),
        root_hint="the PartImageNet Seg release folder (holding images/{train,val,test}/) or its images/<split>/",
        example_root="/data/PartImageNet",
        writer="mixedparts.synth.partimagenet:write", synth_folder="PartImageNet",
        options=(
            ReaderOption("--partimagenet-short-polygons", "short_polygons", "PartImageNet polygons with fewer "
                         "than 3 points (known dirt): drop them, or pad them by repeating the last point as VLPart "
                         "does; counted either way", choices=_CHOICES_POLYGONS, default="drop"),
            ReaderOption("--partimagenet-masks", "mask_source", "PartImageNet mask source: the COCO polygons (as "
                         "the authors) or the PNG label maps", choices=("json", "png"), default="json"),
        )),
    SourceSpec(
        name="ade20k_part234", title="ADE20K-Part-234", flag="--ade20k-part234",
        help="ADE20K-Part-234 root as unpacked from OV-PARTS (holds images/, annotations_detectron2_part/, "
        "ade20k_instance_*.json)",
        reader="mixedparts.sources.ade20k_part234:Ade20kPart234Reader",
        # The release has training/validation only; like the authors we test on validation, and we
        # carve val out of training by a hash of the image id, so the carve-out never moves.
        splits={"training": "train", "validation": "test"}, val_from="training",
        image_folders={"train": ("images/training",), "val": ("images/training",), "test": ("images/validation",)},
        annotation_files=("ade20k_instance_*.json", "annotations_detectron2_part/*/*.png"),
        root_hint="the ADE20K-Part-234 folder (holding images/training/ and images/validation/) or one of those",
        example_root="/data/ADE20KPart234",
        writer="mixedparts.synth.ade20k_part234:write", synth_folder="ADE20KPart234"),
)

_REGISTRY: dict[str, SourceSpec] = {spec.name: spec for spec in BUILTIN_SOURCES}


def register_source(spec: SourceSpec) -> SourceSpec:
    """Add a release to the table (after the built-in ones); its name, flags and folders must be new.

    Register before building a parser or opening readers: the command lines read the table when
    they build their options. Returns ``spec``, so a module can ``SPEC = register_source(SourceSpec(...))``.
    """
    if not isinstance(spec, SourceSpec):
        raise TypeError(f"register_source takes a SourceSpec, got {type(spec).__name__}")
    if spec.name in _REGISTRY or spec.name == HAND_MADE_SOURCE:
        raise MixedPartsError(f"source {spec.name!r} is already registered")
    taken = {s.flag for s in _REGISTRY.values()} | {o.flag for s in _REGISTRY.values() for o in s.options}
    clashes = sorted(({spec.flag} | {o.flag for o in spec.options}) & taken)
    if clashes:
        raise MixedPartsError(f"source {spec.name!r}: option {clashes[0]} is already taken")
    folders = {f for s in _REGISTRY.values() for f in synth_folders(s)}
    clashes = sorted(set(synth_folders(spec)) & folders)
    if clashes:
        raise MixedPartsError(f"source {spec.name!r}: synthetic folder {clashes[0]!r} is already taken")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_source(name: str) -> SourceSpec:
    """Remove a registered release (tests, or a plug-in reloading itself); built-in ones stay."""
    if any(spec.name == name for spec in BUILTIN_SOURCES):
        raise MixedPartsError(f"source {name!r} is built in and cannot be unregistered")
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise MixedPartsError(f"source {name!r} is not registered") from None


def registered_sources() -> tuple[SourceSpec, ...]:
    """Every release, built-in ones first, then in registration order."""
    return tuple(_REGISTRY.values())


def find_source(name: str) -> SourceSpec | None:
    return _REGISTRY.get(name)


def get_source(name: str) -> SourceSpec:
    spec = _REGISTRY.get(name)
    if spec is None:
        raise MixedPartsError(f"unknown source {name!r}; the registered sources are {', '.join(_REGISTRY)}")
    return spec


def source_names() -> tuple[str, ...]:
    """The values a row's ``source`` may take: every registered release, then hand-made rows."""
    return (*_REGISTRY, HAND_MADE_SOURCE)


def synth_folders(spec: SourceSpec) -> tuple[str, ...]:
    return tuple(f for f in (spec.synth_folder, *(o.synth_folder for o in spec.folder_options)) if f)


def flags_sentence() -> str:
    """``--paco, --partimagenet and/or --ade20k-part234``: what to pass when no source was given."""
    flags = [spec.flag for spec in _REGISTRY.values()]
    return flags[0] if len(flags) == 1 else f"{', '.join(flags[:-1])} and/or {flags[-1]}"
