"""The evaluation report's plots (matplotlib, headless): grouped bars and a confusion matrix,
each written as a PNG; the functions return the file's name for the markdown."""

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(
    path: Path,
    categories: list[str],
    series: dict[str, list[float | None]],
    title: str,
    ylabel: str,
    log_scale: bool = False,
    percent: bool = False,
) -> str:
    """Grouped bars: one group per category, one bar per series. Returns the file's name."""
    plt = _pyplot()
    width = 0.8 / max(1, len(series))
    bars_in_all = len(categories) * max(1, len(series))
    inches = 1.5 + 0.5 * bars_in_all + 0.5 * len(categories)
    fig, ax = plt.subplots(figsize=(min(10.0, max(5.0, inches)), 3.6))
    for k, (label, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(categories))]
        shown = [v if v is not None else float("nan") for v in values]  # no bar for no value
        scale = 100 if percent else 1
        bars = ax.bar(xs, [v * scale for v in shown], width, label=label)
        for bar, v in zip(bars, values, strict=True):
            if v is not None:
                text = f"{v:.0%}" if percent else f"{v:.3g}"
                ax.annotate(
                    text,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(range(len(categories)), categories, fontsize=8)
    ax.set_ylabel(ylabel + (" (%)" if percent else ""))
    if log_scale:
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")  # 6, not 6×10⁰
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def confusion_plot(path: Path, labels: list[str], confusion: list[list[int]], title: str) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    ax.imshow(confusion, cmap="Blues")
    most = max(max(row) for row in confusion)
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            colour = "white" if count > most / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=11, color=colour)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
