"""Small server-side charts for the pages (matplotlib, SVG, no JavaScript, no CDN).

Text is kept as SVG text (``svg.fonttype: none``) so the browser draws the Chinese labels with the
page's own CJK face; matplotlib measures with Noto Sans CJK when it is installed."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence

from markupsafe import Markup

_LOCK = threading.Lock()  # pyplot keeps global state; figures are made one at a time
BRAND = "#8b1a1a"
OK = "#2e7d32"
BAD = "#c62828"
GREY = "#9e9e9e"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [n for n in ("Noto Sans CJK SC", "Noto Sans CJK JP") if n in names]
    plt.rcParams.update({"svg.fonttype": "none", "font.family": [*cjk, "DejaVu Sans"], "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "baoxue"})
    return plt


def _svg(fig, plt, title: str) -> Markup:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = svg.replace("Noto Sans CJK JP", "Noto Sans CJK SC")
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{Markup.escape(title)}" class="chart" ', 1)
    return Markup(svg)


def bars(labels: Sequence[str], values: Sequence[float | None], *, title: str, unit: str = "",
         targets: Sequence[float | None] | None = None, passed: Sequence[bool | None] | None = None,
         width: float = 5.6) -> Markup:
    """Horizontal bars, one per label, with the target of each as a black tick and the bar green
    (target met), red (missed) or the brand colour (no target). ``None`` values draw no bar."""
    with _LOCK:
        plt = _plt()
        n = max(len(labels), 1)
        fig, ax = plt.subplots(figsize=(width, 0.42 * n + 0.7))
        ys = list(range(len(labels)))[::-1]
        colours = []
        for i in range(len(labels)):
            p = passed[i] if passed else None
            colours.append(OK if p is True else BAD if p is False else BRAND)
        ax.barh(ys, [v or 0 for v in values], color=colours, height=0.6)
        top = max([v or 0 for v in values] + [t or 0 for t in (targets or [])] + [1])
        for y, v in zip(ys, values, strict=True):
            ax.text((v or 0) + top * 0.01, y, "—" if v is None else f"{v:g}{unit}", va="center", fontsize=8)
        if targets:
            for y, t in zip(ys, targets, strict=True):
                if t is not None:
                    ax.plot([t, t], [y - 0.4, y + 0.4], color="black", linewidth=1.6)
        ax.set_yticks(ys, labels)
        ax.set_xlim(0, top * 1.18)
        ax.set_title(title, fontsize=10, loc="left")
        ax.tick_params(axis="x", labelsize=8)
        return _svg(fig, plt, title)
