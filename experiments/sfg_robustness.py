"""Robustness of the soft focus to annotation error (paper section 4, fig. 3c-d).

Each draw takes the extreme points of a real object, mapped into the model's
canvas as the runtime does (crop with relax, resize to the input size), perturbs
the x and y of each point by U[-10, 10] px, and measures how far the focus moves.

- Focus: the argmax of pi_hat over the canvas (SPEC section 1), i.e. the grid pixel
  of smallest n-ellipse potential inside the points' box.
- Annotation error of a draw: the sum over the extreme points of each point's
  Euclidean displacement, in canvas px. Other readings are reported beside it.
- Focus perturbation: Euclidean distance between the focus before and after.

Writes ``summary.json`` and ``density.png`` (joint density with marginals) to --out.

    python experiments/sfg_robustness.py --draws 10000 --out outputs/robustness
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fairs_sdk.config import InputSpec
from fairs_sdk.crop import crop_box, to_canvas
from fairs_sdk.sfg import n_ellipse_potential
from fairs_sdk.training.simulate import extreme_points

DEFAULT_MASKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "train" / "coco_mval" / "masks"


def focus(points: np.ndarray, shape: tuple[int, int], kappa: float) -> np.ndarray:
    """Grid argmax of pi_hat: the box pixel of least potential sum_i ||x - p_i||_kappa; (x, y)."""
    h, w = shape
    x0, y0 = np.ceil(points.min(axis=0)).astype(int)
    x1, y1 = np.floor(points.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
    yy, xx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
    potential = n_ellipse_potential(xx, yy, points, kappa)
    i, j = np.unravel_index(np.argmin(potential), potential.shape)
    return np.array([x0 + j, y0 + i], dtype=np.float64)


def load_objects(mask_dir: Path, count: int, spec: InputSpec, rng: np.random.Generator) -> list[np.ndarray]:
    """Extreme points, in canvas coordinates, of ``count`` masks drawn from ``mask_dir``."""
    paths = sorted(mask_dir.glob("*.png"))
    if not paths:
        raise SystemExit(f"no masks (*.png) in {mask_dir}")
    objects = []
    for path in rng.permutation(paths)[: min(count, len(paths))]:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 127
        if mask.sum() < 100:
            continue
        points = extreme_points(mask)
        box = crop_box(points, spec.relax)
        objects.append(to_canvas(points, box, spec.input_size))
    return objects


def joint_density_plot(error: np.ndarray, shift: np.ndarray, path: Path, title: str) -> None:
    """Hexbin joint density of annotation error vs focus perturbation, with marginals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6.4, 6.4))
    grid = fig.add_gridspec(4, 4, hspace=0.05, wspace=0.05)
    ax = fig.add_subplot(grid[1:, :3])
    top = fig.add_subplot(grid[0, :3], sharex=ax)
    right = fig.add_subplot(grid[1:, 3], sharey=ax)
    ax.hexbin(error, shift, gridsize=45, cmap="Blues", mincnt=1, extent=(error.min(), error.max(), 0, float(np.percentile(shift, 99))))
    ax.set_xlabel("annotation error: sum of extreme-point displacements (px)")
    ax.set_ylabel("focus perturbation (px)")
    top.hist(error, bins=60, color="tab:blue", alpha=0.7)
    right.hist(shift, bins=60, range=(0, float(np.percentile(shift, 99))), orientation="horizontal", color="tab:blue", alpha=0.7)
    for a, value in ((top, error.mean()), (ax, error.mean())):
        a.axvline(value, color="tab:red", lw=1)
    for a, value in ((right, shift.mean()), (ax, shift.mean())):
        a.axhline(value, color="tab:red", lw=1)
    shown = float(np.percentile(shift, 99))
    ax.set_ylim(-0.5, shown)
    ax.text(0.98, 0.97, f"{int((shift > shown).sum())} draws above {shown:.0f} px not shown",
            transform=ax.transAxes, ha="right", va="top", fontsize=8)
    top.tick_params(labelbottom=False)
    right.tick_params(labelleft=False)
    top.set_title(title, fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--objects", type=int, default=200, help="real objects the draws cycle over")
    parser.add_argument("--masks", type=Path, default=DEFAULT_MASKS, help="folder of object mask PNGs")
    parser.add_argument("--noise", type=float, default=10.0, help="uniform noise half-width, px")
    parser.add_argument(
        "--diamond", action="store_true",
        help="instead of real objects, one symmetric diamond of extreme points spanning the canvas",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/robustness"))
    args = parser.parse_args(argv)

    spec = InputSpec()
    rng = np.random.default_rng(args.seed)
    if args.diamond:
        lo, mid, hi = spec.relax, spec.input_size / 2, spec.input_size - 1 - spec.relax
        objects = [np.array([(lo, mid), (hi, mid), (mid, lo), (mid, hi)], dtype=np.float64)]
    else:
        objects = load_objects(args.masks, args.objects, spec, rng)
    source = "symmetric diamond" if args.diamond else f"{len(objects)} real objects from {args.masks.parent.name}"
    canvas = (spec.input_size, spec.input_size)
    base_focus = [focus(points, canvas, spec.kappa) for points in objects]

    displacement = np.empty((args.draws, 4))
    shift = np.empty(args.draws)
    for d in tqdm(range(args.draws), desc="draws", unit="draw", mininterval=2.0):
        k = d % len(objects)
        delta = rng.uniform(-args.noise, args.noise, size=objects[k].shape)
        displacement[d] = np.hypot(delta[:, 0], delta[:, 1])
        shift[d] = np.hypot(*(focus(objects[k] + delta, canvas, spec.kappa) - base_focus[k]))

    error = displacement.sum(axis=1)
    summary = {
        "draws": args.draws,
        "objects": source,
        "noise_px": args.noise,
        "mean_annotation_error_px": float(error.mean()),
        "mean_focus_perturbation_px": float(shift.mean()),
        "median_focus_perturbation_px": float(np.median(shift)),
        "other_readings_of_annotation_error_px": {
            "mean_displacement_per_point": float(displacement.mean()),
            "norm_of_all_8_coordinate_offsets": float(np.sqrt((displacement**2).sum(axis=1)).mean()),
        },
        "paper": {"mean_annotation_error_px": 32.9, "mean_focus_perturbation_px": 5.8},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    joint_density_plot(
        error,
        shift,
        args.out / "density.png",
        f"{args.draws} draws, U[-{args.noise:g}, {args.noise:g}] px on x and y of 4 extreme points "
        f"({source})",
    )
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
