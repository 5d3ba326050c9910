"""Matplotlib (Agg) figures of the report, each written to one PNG; matplotlib is imported when a plot is drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from smcv.report.metrics import Curve

DPI = 100
MAX_CURVES = 10  # classes drawn in one ROC/PR figure (evaluation.json has every class)
ANNOTATE_UP_TO = 20  # confusion matrices up to this many classes carry their counts
SKIPPED_KEYS = ("epoch", "partial", "train:throughput", "train:compile_seconds")


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    """A Figure and its axes, without pyplot's global state."""
    import matplotlib  # lazily: training without a report never imports it

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure, figure.subplots(1, ncols, squeeze=False)[0]


def _save(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)


def _whole_epochs(*axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def training_curves(history: Sequence[dict[str, float]], objective: str, path: Path) -> None:
    """Train and validation loss per epoch (left) and the validation metrics per epoch (right)."""
    rows = [h for h in history if not h.get("partial")]
    if not rows:
        raise ValueError("no finished epoch to plot")
    epochs = [int(h["epoch"]) for h in rows]
    metrics = sorted({k for h in rows for k in h if k.startswith("validation:") and k != "validation:loss"})
    figure, (losses, *rest) = _figure(10 if metrics else 6, 4, 2 if metrics else 1)
    for key in ("train:loss", "validation:loss"):
        if any(key in h for h in rows):
            losses.plot(epochs, [h.get(key, np.nan) for h in rows], marker="o", label=key)
    losses.set(xlabel="epoch", ylabel="loss", title="loss")
    losses.legend()
    _whole_epochs(losses, *rest)
    if metrics:
        for key in metrics:
            style = {"linewidth": 2.5} if key == objective else {}
            rest[0].plot(epochs, [h.get(key, np.nan) for h in rows], marker="o", label=key, **style)
        rest[0].set(xlabel="epoch", title=f"validation metrics (objective {objective})")
        rest[0].legend()
    _save(figure, path)


def confusion_matrix(matrix: np.ndarray, names: Sequence[str], path: Path, title: str = "confusion matrix") -> None:
    """Rows = true class, columns = predicted, coloured by the share of the row, counts written when few classes."""
    m = np.asarray(matrix, np.float64)
    shares = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    side = min(4 + 0.35 * len(names), 16)
    figure, (axes,) = _figure(side + 1, side)
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if len(names) <= ANNOTATE_UP_TO:
        for (i, j), count in np.ndenumerate(m):
            axes.text(j, i, f"{int(count)}", ha="center", va="center",
                      color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
        axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
        axes.set_yticks(range(len(names)), names)
    axes.set(xlabel="predicted class", ylabel="true class", title=title)
    figure.colorbar(image, ax=axes, label="share of the true class")
    _save(figure, path)


def class_curves(curves: dict[str, Optional[Curve]], kind: str, path: Path) -> None:
    """ROC (kind 'roc') or precision-recall (kind 'pr') curves, one line per class (the first MAX_CURVES)."""
    drawn = [(name, c) for name, c in curves.items() if c is not None][:MAX_CURVES]
    if not drawn:
        raise ValueError(f"no class has the positives a {kind.upper()} curve needs")
    figure, (axes,) = _figure(6, 5)
    for name, curve in drawn:
        label = f"{name} ({'AUC' if kind == 'roc' else 'AP'} {curve.area:.3f})"
        axes.plot(curve.x, curve.y, label=label, drawstyle="default" if kind == "roc" else "steps-post")
    if kind == "roc":
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC per class")
    else:
        axes.set(xlabel="recall", ylabel="precision", title="precision-recall per class")
    shown = "" if len(drawn) == len(curves) else f" (first {len(drawn)} of {len(curves)} classes)"
    axes.set(xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8, title=shown.strip() or None)
    _save(figure, path)


def reliability(calibration: dict[str, Any], path: Path) -> None:
    """Accuracy against mean confidence per bin (bars) beside the diagonal of perfect calibration, with the ECE."""
    bins = calibration["bins"]
    filled = [b for b in bins if b["count"]]
    figure, (axes,) = _figure(5.5, 5)
    width = bins[0]["upper"] - bins[0]["lower"]
    centres = [(b["lower"] + b["upper"]) / 2 for b in filled]
    accuracy = np.array([b["accuracy"] for b in filled], np.float64)
    gap = np.array([b["confidence"] for b in filled], np.float64) - accuracy
    axes.bar(centres, accuracy, width=width, edgecolor="black", label="accuracy")
    axes.bar(centres, gap, bottom=accuracy, width=width, color="red", alpha=0.3, label="gap to mean confidence")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    counts = ", ".join(str(b["count"]) for b in bins)
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy",
             title=f"reliability diagram: ECE {calibration['ece']:.4f}")
    axes.legend(loc="upper left", fontsize=8)
    axes.text(0.99, 0.01, f"samples per bin: {counts}", ha="right", va="bottom", fontsize=6, transform=axes.transAxes)
    _save(figure, path)


def class_bars(names: Sequence[str], values: Sequence[Optional[float]], label: str, path: Path) -> None:
    """One horizontal bar per class (classes without a value are marked n/a)."""
    figure, (axes,) = _figure(6, min(2 + 0.3 * len(names), 20))
    shown = [v if v is not None else 0.0 for v in values]
    positions = np.arange(len(names))
    axes.barh(positions, shown, color="tab:blue")
    for y, value in zip(positions, values):
        axes.text(min(value or 0.0, 1.0) + 0.01, y, "n/a" if value is None else f"{value:.3f}", va="center", fontsize=8)
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.set(xlim=(0, 1.12), xlabel=label, title=f"{label} per class")
    _save(figure, path)
