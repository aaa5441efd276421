"""DINOv2 feature co-segmentation: a weights-only, language-free reference baseline.

Recipe, per sample of k images:
1. DINOv2 patch features of every image (``transformers.Dinov2Model`` from any local checkpoint;
   images resized to ``resolution`` x ``resolution``, ImageNet normalization), L2-normalized.
2. Foreground: the first principal component of all k images' patches jointly, thresholded at 0;
   its sign is chosen so that the image borders are mostly background (the DINOv2 paper's trick).
   The foreground of each image is its *object* mask.
3. Parts: k-means (cosine, k-means++ seeded, in torch) on the foreground patches of all k images
   jointly into ``clusters`` clusters. A cluster is *present* in an image when it covers at least
   ``min_share`` of that image's foreground patches; present in all images -> common part, present in
   exactly one -> unique part of that image.
4. Masks are upsampled (nearest) from the patch grid to each image's full resolution.

Labels. The baseline has no language model, so it can honestly name nothing: objects are labelled
``object`` and parts ``part 1``, ``part 2``, ... (numbered by cluster size). Its mask metrics (AP50,
mIoU) are meaningful; SS, S-IoU and the label-gated Recall are a floor, not a measurement. Using the
ground-truth names would leak the answer, so it is not offered.
"""

from __future__ import annotations

import argparse

import numpy as np

NAME = "dino-coseg"
HELP = "DINOv2 patch features of all images clustered jointly; shared clusters = common parts (no language)"

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="a local DINOv2 checkpoint folder (transformers Dinov2Model, e.g. facebook/dinov2-small)")
    parser.add_argument("--resolution", type=int, default=448, help="square input side in pixels (default 448)")
    parser.add_argument("--clusters", type=int, default=6, help="part clusters per sample (default 6)")
    parser.add_argument("--min-share", type=float, default=0.05,
                        help="share of an image's foreground patches a cluster needs to count as present "
                             "(default 0.05)")
    parser.add_argument("--iterations", type=int, default=30, help="k-means iterations (default 30)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)


def kmeans(features, clusters: int, iterations: int = 30, seed: int = 0):
    """Cosine k-means on L2-normalized rows, k-means++ initialization; returns (assignment, centers)."""
    import torch

    x = torch.nn.functional.normalize(features.float(), dim=1)
    n = x.shape[0]
    clusters = max(1, min(clusters, n))
    generator = torch.Generator().manual_seed(seed)
    centers = [x[torch.randint(n, (1,), generator=generator).item()]]
    for _ in range(1, clusters):
        distance = (1 - x @ torch.stack(centers).T).clamp_min(0).min(dim=1).values
        if float(distance.sum()) <= 0:
            break
        centers.append(x[torch.multinomial(distance, 1, generator=generator).item()])
    centers = torch.stack(centers)
    assignment = torch.zeros(n, dtype=torch.long)
    for _ in range(iterations):
        new = (x @ centers.T).argmax(dim=1)
        if _ and torch.equal(new, assignment):
            break
        assignment = new
        for c in range(centers.shape[0]):
            members = x[assignment == c]
            if len(members):
                centers[c] = torch.nn.functional.normalize(members.mean(dim=0), dim=0)
    return assignment, centers


class DinoCoseg:
    def __init__(self, model_path: str, resolution: int = 448, clusters: int = 6, min_share: float = 0.05,
                 iterations: int = 30, device: str = "cpu", seed: int = 0):
        import torch
        from transformers import Dinov2Model

        from baselines.errors import BaselineError

        try:
            self.model = Dinov2Model.from_pretrained(model_path).eval().to(device)
        except (OSError, ValueError) as error:
            raise BaselineError(f"dino-coseg: cannot load a DINOv2 checkpoint from {model_path!r} (a local "
                                f"folder with config.json and weights, e.g. a copy of facebook/dinov2-small): "
                                f"{error}") from None
        self.patch = int(self.model.config.patch_size)
        self.resolution = max(self.patch, resolution // self.patch * self.patch)
        self.clusters, self.min_share, self.iterations = clusters, min_share, iterations
        self.device, self.seed = device, seed
        self.torch = torch

    def features(self, images):
        """(k, g, g, d) patch features, g = resolution / patch size."""
        torch = self.torch
        pixels = []
        for image in images:
            array = np.asarray(image.convert("RGB").resize((self.resolution, self.resolution)), dtype=np.float32) / 255
            pixels.append((array - MEAN) / STD)
        batch = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float().to(self.device)
        with torch.no_grad():
            hidden = self.model(pixel_values=batch).last_hidden_state
        grid = self.resolution // self.patch
        tokens = hidden[:, -grid * grid:]  # drops CLS (and register tokens, if any)
        return tokens.reshape(len(images), grid, grid, -1).cpu()

    def segment(self, images) -> tuple[np.ndarray, np.ndarray]:
        """(foreground (k, g, g) bool, cluster (k, g, g) int, -1 on background)."""
        torch = self.torch
        feats = torch.nn.functional.normalize(self.features(images).float(), dim=-1)
        k, g, _, d = feats.shape
        flat = feats.reshape(-1, d)
        centred = flat - flat.mean(dim=0)
        # First principal component via SVD (deterministic up to sign, fixed below by the borders).
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        component = (centred @ v[0]).reshape(k, g, g)
        border = torch.zeros(g, g, dtype=torch.bool)
        border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
        if float((component[:, border] > 0).float().mean()) > 0.5:
            component = -component
        foreground = component > 0
        for i in range(k):  # an image with no foreground keeps its most object-like half
            if not foreground[i].any():
                foreground[i] = component[i] >= component[i].median()
        cluster = torch.full((k, g, g), -1, dtype=torch.long)
        assignment, _ = kmeans(feats[foreground], self.clusters, self.iterations, self.seed)
        cluster[foreground] = assignment
        return foreground.numpy(), cluster.numpy()

    def predict(self, row: dict, images) -> dict:
        from baselines.common import Group, compose

        foreground, cluster = self.segment(images)
        sizes = [(image["height"], image["width"]) for image in row["images"]]
        k = len(images)

        def upsample(grid_mask: np.ndarray, size) -> np.ndarray:
            h, w = size
            g = grid_mask.shape[0]
            ys = np.minimum(np.arange(h) * g // h, g - 1)
            xs = np.minimum(np.arange(w) * g // w, g - 1)
            return grid_mask[np.ix_(ys, xs)]

        objects = [Group("object", {i: upsample(foreground[i], sizes[i])}) for i in range(k)]
        present: dict[int, list[int]] = {}
        ids, counts = np.unique(cluster[cluster >= 0], return_counts=True)
        order = [int(c) for c in ids[np.argsort(-counts, kind="stable")]]
        for c in order:
            present[c] = [i for i in range(k)
                          if (cluster[i] == c).sum() >= self.min_share * max(1, foreground[i].sum())]
        parts = []
        for number, c in enumerate(order, 1):
            where = present[c]
            if row["task"] == "common_parts" and len(where) == k:
                parts.append(Group(f"part {number}", {i: upsample(cluster[i] == c, sizes[i]) for i in where}))
            elif row["task"] == "unique_parts" and len(where) == 1:
                parts.append(Group(f"part {number}", {where[0]: upsample(cluster[where[0]] == c, sizes[where[0]])}))
        if row["task"] == "common_object":
            return compose(row["sample_id"], row["task"], [Group("object", {i: objects[i].masks[i] for i in range(k)})])
        return compose(row["sample_id"], row["task"], objects, parts)


def run(args: argparse.Namespace, rows: list[dict], images) -> list[dict]:
    system = DinoCoseg(args.model, args.resolution, args.clusters, args.min_share, args.iterations, args.device,
                       args.seed)
    return [system.predict(row, images.open_all(row)) for row in rows]
