"""The cost-quality plot of an evaluation report (needs matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_report"]


def plot_report(report: dict[str, Any], path: str | Path) -> None:
    """Router curve, single backends, zero-router hull and oracle on one chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .metrics import upper_hull

    fig, ax = plt.subplots(figsize=(7, 4.5))
    curve = sorted((p["cost"], p["quality"]) for p in report["router"]["curve"])
    ax.plot([c for c, _ in curve], [q for _, q in curve], "-", label="router", color="C0")
    single = report["baselines"]["single"]
    hull = upper_hull([(s["cost"], s["quality"]) for s in single.values()])
    ax.plot([c for c, _ in hull], [q for _, q in hull], "--", color="gray", label="zero router")
    for name, s in single.items():
        ax.plot(s["cost"], s["quality"], "o", color="C1")
        ax.annotate(name, (s["cost"], s["quality"]), fontsize=7)
    oracle = report["baselines"]["oracle"]
    ax.plot(oracle["cost"], oracle["quality"], "*", color="C2", markersize=10, label="oracle")
    ax.set_xlabel("mean cost per prompt (USD)")
    ax.set_ylabel("mean quality")
    ax.set_title(f"AIQ router {report['router']['aiq']:.3f}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
