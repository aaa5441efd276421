"""Builder options: every knob of the pairing, with the defaults documented in the README."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mixedparts.schema import TASKS

BUILDER_VERSION = "1.1.0"  # 1.1: unique parts are decided from every annotation, before the area filter

PART_PRESENCE = ("all-annotations", "surviving-masks")
"""What makes an object *have* a part when the pairing decides which parts are unique.
``all-annotations`` (default): any annotation of the part, even one whose masks the area filter drops.
``surviving-masks`` (builder 1.0): only masks that survive the filter, so a part that is small on the
other object counts as unique to this one."""


@dataclass(frozen=True)
class BuildOptions:
    seed: int = 0
    images_per_sample: int = 2
    # Partner draws per anchor object and task: the main volume knob (see the README's count formula).
    partners_per_anchor: dict = field(default_factory=lambda: {"common_object": 11, "common_parts": 14,
                                                               "unique_parts": 14})
    cap_per_object: int = 120  # appearances of one object across all samples of its split
    cap_per_category_pair: int = 30000  # samples per (task, category combination) per source and split
    same_category_fraction: float = 0.5  # part tasks: share of partners drawn from the anchor's category
    max_samples_per_split: int | None = None
    ade_val_fraction: float = 0.1  # ADE20K-Part-234 has no val split: this share of training images is val
    shard_rows: int = 50000
    min_area_fraction: float = 0.02
    part_presence: str = "all-annotations"

    def __post_init__(self):
        if not 2 <= self.images_per_sample <= 6:
            raise ValueError("images_per_sample must be between 2 and 6")
        if set(self.partners_per_anchor) != set(TASKS):
            raise ValueError(f"partners_per_anchor needs exactly the tasks {TASKS}")
        if not 0.0 <= self.same_category_fraction <= 1.0:
            raise ValueError("same_category_fraction must be in [0, 1]")
        if self.shard_rows < 1:
            raise ValueError("shard_rows must be positive")
        if self.part_presence not in PART_PRESENCE:
            raise ValueError(f"part_presence must be one of {PART_PRESENCE}, got {self.part_presence!r}")

    def fingerprint(self) -> dict:
        """What decides the content of the shards (``shard_rows`` decides the layout, so it counts too)."""
        return {"builder_version": BUILDER_VERSION, **asdict(self)}
