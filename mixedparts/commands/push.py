"""``mixedparts push``: upload a built dataset folder (annotations only) to the Hugging Face Hub.

What goes up: ``README.md`` (the dataset card, which states that images are not included and come from
the upstream releases under their own terms; the statement is added if a card lacks it),
``manifest.json`` without the builder's local paths (image roots, source folders), and the Parquet
shards the manifest lists, each checked against its recorded sha256 first. Nothing else in the
folder (build state, temporary files) is uploaded; shards of an earlier push that this one does not
have are deleted from the repo in the same commit. The upload is staged in a temporary folder of
symbolic links, so nothing is copied.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

HELP = "upload a built dataset folder (annotations only: shards, card, manifest) to a Hugging Face Hub dataset repo"

IMAGES_STATEMENT = (
    "**Annotations only.** Images are not included: they come from the upstream releases (COCO 2017 for PACO-LVIS, "
    "ImageNet for PartImageNet, ADE20K for ADE20K-Part-234) under their own terms, which forbid redistribution and "
    "restrict use to non-commercial research. Download them from their owners and point the loader at them.")
USAGE_SECTION = """## Using the images

```python
from mixedparts import load_dataset

ds = load_dataset("{repo_id}", split="test", decode_images=True, decode_masks=True,
                  image_roots={{"paco_lvis": "/data/coco", "partimagenet": "/data/PartImageNet",
                               "ade20k_part234": "/data/ADE20KPart234"}})
```
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="the Hub dataset repo (created if absent)")
    parser.add_argument("--data", default="mixedparts", metavar="DIR",
                        help="the dataset folder, or 'mixedparts' for the default location")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", help="the branch to push to (default: main)")
    parser.add_argument("--token", help="a Hub token (default: HF_TOKEN or the cached login)")
    parser.add_argument("--commit-message", default=None, help="the commit message")
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the shards")
    parser.add_argument("--dry-run", action="store_true", help="check and stage everything, print what would be "
                        "uploaded, and stop before contacting the Hub")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def public_manifest(manifest: dict) -> dict:
    """The manifest without local paths: no image roots; each source's folder reduced to its name."""
    public = json.loads(json.dumps(manifest))
    public["image_roots"] = {}
    for source in public.get("sources", {}).values():
        if isinstance(source, dict) and source.get("root"):
            source["root"] = Path(source["root"]).name
    public["note"] = ("Images are not included; pass image_roots={source: folder} to mixedparts.load_dataset "
                      "(see the dataset card).")
    return public


def public_card(card: str, repo_id: str) -> str:
    """The card, with the images statement and the usage section added when missing."""
    if "Images are not included" not in card:
        lines = card.split("\n")
        # After the YAML front matter and the title (the first '# ' heading), else at the top of the body.
        end = 0
        if lines and lines[0].strip() == "---":
            end = next((i + 1 for i in range(1, len(lines)) if lines[i].strip() == "---"), 0)
        title = next((i for i in range(end, len(lines)) if lines[i].startswith("# ")), None)
        at = (title + 1) if title is not None else end
        lines[at:at] = ["", IMAGES_STATEMENT, ""]
        card = "\n".join(lines)
    if "## Using the images" not in card:
        card = card.rstrip("\n") + "\n\n" + USAGE_SECTION.format(repo_id=repo_id)
    return card


def stage(folder: Path, staging: Path, repo_id: str, verify: bool = True) -> list[tuple[str, int]]:
    """Fill ``staging`` with what goes up; return (path in repo, bytes) per file."""
    from mixedparts.errors import MixedPartsError

    manifest_path, card_path = folder / "manifest.json", folder / "README.md"
    if not manifest_path.is_file():
        raise MixedPartsError(f"{folder}: no manifest.json: not a finished MixedParts build (run `mixedparts build "
                              f"--out {folder}` to finish it)")
    if not card_path.is_file():
        raise MixedPartsError(f"{folder}: no README.md dataset card (rerun `mixedparts build --out {folder}`)")
    try:
        manifest = json.loads(manifest_path.read_text())
        shards = manifest["shards"]
    except (ValueError, KeyError, TypeError) as error:
        raise MixedPartsError(f"{manifest_path}: not a MixedParts manifest ({error})") from None
    card = card_path.read_text()
    if "configs:" not in card:
        raise MixedPartsError(f"{card_path}: the card declares no `configs:` (plain datasets.load_dataset would not "
                              f"find the splits); rerun `mixedparts build --out {folder}`")
    on_disk = {p.name for p in (folder / "data").glob("*.parquet")}
    missing = sorted(set(shards) - on_disk)
    if missing:
        raise MixedPartsError(f"{folder}: shard data/{missing[0]} listed in manifest.json is missing")
    extra = sorted(on_disk - set(shards))
    if extra:
        raise MixedPartsError(f"{folder}: data/{extra[0]} is not listed in manifest.json (a stale shard?); remove it "
                              f"or rebuild")
    files = []
    (staging / "data").mkdir(parents=True)
    for name in sorted(shards):
        path = folder / "data" / name
        if verify and sha256(path) != shards[name].get("sha256"):
            raise MixedPartsError(f"{path}: sha256 differs from manifest.json (damaged or modified shard); rebuild it "
                                  f"with `mixedparts build --out {folder}`, or pass --no-verify")
        (staging / "data" / name).symlink_to(path.resolve())
        files.append((f"data/{name}", path.stat().st_size))
    (staging / "README.md").write_text(public_card(card, repo_id))
    (staging / "manifest.json").write_text(json.dumps(public_manifest(manifest), indent=1) + "\n")
    files += [("README.md", (staging / "README.md").stat().st_size),
              ("manifest.json", (staging / "manifest.json").stat().st_size)]
    return files


def run(args: argparse.Namespace) -> int:
    import tempfile

    from mixedparts.errors import MixedPartsError
    from mixedparts.loader import resolve

    where = resolve(args.data)
    if not isinstance(where, Path):
        raise MixedPartsError(f"{args.data}: push needs a local dataset folder")
    with tempfile.TemporaryDirectory(prefix="mixedparts-push-") as scratch:
        staging = Path(scratch) / "upload"
        files = stage(where, staging, args.repo_id, verify=not args.no_verify)
        total = sum(size for _, size in files)
        print(f"{len(files)} files, {total / 1024**2:,.1f} MiB from {where} -> https://huggingface.co/datasets/"
              f"{args.repo_id}{' (private)' if args.private else ''}")
        for name, size in files:
            print(f"  {name:40s} {size / 1024**2:10,.2f} MiB")
        if args.dry_run:
            print("dry run: nothing uploaded")
            return 0
        from huggingface_hub import HfApi

        api = HfApi(token=args.token)
        shard_count = sum(1 for name, _ in files if name.startswith("data/"))
        message = args.commit_message or f"Upload MixedParts ({shard_count} shards)"
        try:
            api.create_repo(args.repo_id, repo_type="dataset", private=args.private, exist_ok=True)
            result = api.upload_folder(repo_id=args.repo_id, repo_type="dataset", folder_path=str(staging),
                                       commit_message=message, revision=args.revision, delete_patterns=["data/*"])
        except Exception as error:  # network, authentication, permissions: one line, exit 2
            raise MixedPartsError(f"upload to {args.repo_id} failed: {type(error).__name__}: {error}") from None
    print(f"uploaded: {getattr(result, 'commit_url', None) or result}")
    return 0
