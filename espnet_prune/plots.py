"""The figures a pruning run is judged by, as PNG files (matplotlib, no display needed).

* :func:`plot_layers`: what remains of each layer of a pruned upstream (conv channels per CNN
  layer; heads and FFN units per Transformer layer), from a ``pruning_summary`` dict.
* :func:`plot_tradeoff`: an error rate against GMACs, one curve per pruning method and the
  unpruned models as points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from espnet_prune.data.atomic import atomic_file


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def plot_layers(summary: Mapping[str, Any], path: Path, title: str = "") -> None:
    """Three bar panels, the kept fraction of each layer with the kept count on each bar."""
    plt = _pyplot()
    conv = summary["conv"]
    trf = summary["transformer"]
    panels = [
        ("CNN: conv channels", [f"conv{r['layer']}" for r in conv], [r["channels"] for r in conv], [r["of"] for r in conv]),
        ("Transformer: attention heads", [f"L{r['layer']}" for r in trf],
         [r["heads"] if r["attention"] else 0 for r in trf], [r["of_heads"] for r in trf]),
        ("Transformer: FFN units", [f"L{r['layer']}" for r in trf],
         [r["ffn_units"] if r["ffn"] else 0 for r in trf], [r["of_ffn_units"] for r in trf]),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, (name, labels, kept, of) in zip(axes, panels):
        fractions = [k / o if o else 0.0 for k, o in zip(kept, of)]
        bars = ax.bar(labels, fractions, color="tab:blue")
        ax.bar(labels, [1 - f for f in fractions], bottom=fractions, color="lightgrey")
        for bar, k in zip(bars, kept):
            ax.annotate(str(k), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
        ax.set_title(name)
        ax.set_ylim(0, 1.1)
        ax.tick_params(axis="x", labelrotation=45)
    axes[0].set_ylabel("fraction kept")
    d, p = summary["dense"], summary["pruned"]
    fig.suptitle(
        f"{title}  params {p['params']['total'] / 1e6:.2f}/{d['params']['total'] / 1e6:.2f} M, "
        f"GMACs ({summary['seconds']:g} s) {p['macs']['total'] / 1e9:.2f}/{d['macs']['total'] / 1e9:.2f}".strip(),
        y=1.04,  # above the panel titles
    )
    _save(fig, path)
    plt.close(fig)


def plot_tradeoff(
    points: Sequence[tuple[str, float, Optional[float]]], path: Path, ylabel: str = "WER (%)", title: str = ""
) -> None:
    """``points``: (method, GMACs, error); methods "unpruned..." (with a teacher or not) are drawn as
    points, others as curves."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    by_method: dict[str, list[tuple[float, float]]] = {}
    for method, gmacs, error in points:
        if error is not None:
            by_method.setdefault(method, []).append((gmacs, error))
    for method, xy in sorted(by_method.items()):
        xy.sort()
        xs, ys = [x for x, _ in xy], [y for _, y in xy]
        if method == "unpruned":
            ax.scatter(xs, ys, marker="*", s=150, color="black", label="unpruned", zorder=3)
        elif method.startswith("unpruned"):
            ax.scatter(xs, ys, marker="P", s=90, label=method, zorder=3)
        else:
            ax.plot(xs, ys, marker="o", label=method)
    ax.set_xlabel("upstream GMACs (10 s input)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if by_method:
        ax.legend()
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)
