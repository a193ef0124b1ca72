"""Pictures: the loss curve logged with every run, and the 2-D map of the catalogue."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.colors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)


def plot_loss(history: Sequence, path: Path) -> Path:
    """Mean training loss per epoch, with season boundaries marked."""
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(range(1, len(history) + 1), [report.loss for report in history], marker="o")
    for position, (before, after) in enumerate(zip(history, history[1:]), start=1):
        if after.season != before.season:
            axis.axvline(position + 0.5, color="grey", linewidth=0.5)
    axis.set_xlabel("epoch (grey lines: new season)")
    axis.set_ylabel("mean softmax cross-entropy")
    axis.set_title("film2vec training loss")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_held_out_curve(curve: Sequence[dict[str, float]], path: Path) -> Path:
    """The held-out figures after each season (--seasons 0): the curve the run stopped on."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for name in curve[0] if curve else ():
        axis.plot(range(len(curve)), [figures[name] for figures in curve], marker="o", label=name)
    axis.set_xlabel("season")
    axis.set_ylabel("figure on the held-out slice")
    axis.set_title("film2vec: held-out figures by season")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


MAP_COLOURS = 20  # tab20: categories beyond the 19 most common share one grey "other"


def colour_groups(categories: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Each point's group (its category, or "other" beyond the most common) and each group's colour."""
    names, counts = np.unique(np.asarray(categories, dtype=object).astype(str), return_counts=True)
    common = [str(n) for n in names[np.lexsort((names, -counts))]]
    shown = common if len(common) <= MAP_COLOURS else common[: MAP_COLOURS - 1]
    palette = plt.get_cmap("tab20").colors
    colours = {name: matplotlib.colors.to_hex(palette[i]) for i, name in enumerate(shown)}
    if len(shown) < len(common):
        colours["other"] = "#bbbbbb"
    groups = [str(c) if str(c) in colours else "other" for c in categories]
    return groups, colours


def plot_map(xy: np.ndarray, colourings: dict[str, Sequence[str]], path: Path) -> Path:
    """One scatter panel per colouring (e.g. genre, cluster) of the 2-D map, legend beside each."""
    figure, axes = plt.subplots(1, len(colourings), figsize=(9 * len(colourings), 8), squeeze=False)
    for axis, (title, categories) in zip(axes[0], colourings.items()):
        groups, colours = colour_groups(categories)
        groups = np.asarray(groups)
        for name, colour in colours.items():
            at = groups == name
            axis.scatter(xy[at, 0], xy[at, 1], s=4, c=colour, label=f"{name} ({at.sum()})", linewidths=0)
        axis.set_title(f"assets coloured by {title}")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize=8, markerscale=3, frameon=False)
    figure.suptitle(f"film2vec map of {len(xy):,} assets (t-SNE, cosine)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_map_html(xy: np.ndarray, hover: Sequence[str], colourings: dict[str, Sequence[str]], path: Path) -> Path:
    """A self-contained interactive map: one SVG per colouring (buttons switch), a point's text on hover."""
    low, high = xy.min(axis=0), xy.max(axis=0)
    scaled = 20 + 760 * (xy - low) / np.where(high > low, high - low, 1)
    panels, buttons = [], []
    for number, (title, categories) in enumerate(colourings.items()):
        groups, colours = colour_groups(categories)
        points = "".join(
            f'<circle cx="{x:.1f}" cy="{800 - y:.1f}" r="2.5" fill="{colours[g]}">'
            f"<title>{html.escape(t)}</title></circle>"
            for (x, y), g, t in zip(scaled, groups, hover)
        )
        legend = "".join(
            f'<li><span style="background:{c}"></span>{html.escape(name)}</li>' for name, c in colours.items()
        )
        hidden = "" if number == 0 else ' style="display:none"'
        panels.append(
            f'<div class="panel" id="panel{number}"{hidden}><svg viewBox="0 0 800 800" width="800" height="800">'
            f"{points}</svg><ul>{legend}</ul></div>"
        )
        buttons.append(f'<button onclick="show({number})">coloured by {html.escape(title)}</button>')
    page = MAP_PAGE.format(
        count=f"{len(xy):,}", buttons="".join(buttons), panels="".join(panels), panel_count=len(colourings)
    )
    path.write_text(page, encoding="utf-8")
    return path


MAP_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>film2vec map</title>
<style>
body {{ font-family: sans-serif; }} .panel {{ display: flex; gap: 1em; }}
ul {{ list-style: none; font-size: 12px; }} li span {{ display: inline-block; width: 10px; height: 10px;
margin-right: 4px; }} circle:hover {{ stroke: black; stroke-width: 1.5; }}
</style></head><body>
<h3>film2vec map of {count} assets (t-SNE, cosine); hover a point for its title</h3>
<p>{buttons}</p>{panels}
<script>
function show(shown) {{
  for (let i = 0; i < {panel_count}; i++) {{
    document.getElementById("panel" + i).style.display = i === shown ? "flex" : "none";
  }}
}}
</script></body></html>
"""
