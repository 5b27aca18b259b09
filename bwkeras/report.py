"""Markdown for people: tables of results and a run's report.md.

Keras-free: results can be tabulated and reports written without starting TensorFlow.
"""
import math
import os

import numpy as np

__all__ = ["markdown_table", "run_report"]


def markdown_table(rows, columns=None, floatfmt=".4g"):
    """A GitHub-flavoured markdown table from a list of dicts."""
    rows = list(rows)
    if columns is None:
        columns = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)

    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "nan" if not math.isfinite(v) else format(float(v), floatfmt)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(str(c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _world_changes(run_dir):
    """Lines on each change of world an elastic run recorded in world.json, if any."""
    import json

    try:
        with open(os.path.join(run_dir, "world.json"), encoding="utf-8") as fh:
            worlds = json.load(fh)
    except (OSError, ValueError):
        return []
    changes = [w for w in worlds if isinstance(w, dict) and w.get("from") is not None]
    if not changes:
        return []
    lines = ["## Changes of world", "",
             f"Elastic training started on {worlds[0].get('ranks')} ranks; the world changed "
             f"{len(changes)} time{'s' if len(changes) > 1 else ''} ([world.json](world.json)):", ""]
    for w in changes:
        lines.append(f"- {w.get('time')}: from {w['from']} to {w.get('ranks')} ranks, in epoch "
                     f"{w.get('epoch')} after {w.get('samples_done')} of its samples")
    return lines + [""]


def run_report(run_dir, title, sections=(), plots=(), tables=(), resumed_from=None):
    """The text of a run's report.md: a title, markdown tables, text sections, the plots
    (linked relative to `run_dir`) and links to the config and the training histories.

    tables: (caption, rows) pairs, rows a list of dicts; sections: (heading, text) pairs;
    plots: paths of PNG files inside `run_dir`; resumed_from: the epoch a resumed run
    continued from (None for a run that started fresh).
    """
    lines = [f"# {title}", "", f"Run directory: `{os.path.basename(run_dir)}`"]
    if resumed_from is not None:
        lines.append(f"Resumed from epoch {resumed_from}.")
    lines.append("")
    for caption, rows in tables:
        lines += [f"## {caption}", "", markdown_table(rows), ""]
    for heading, text in sections:
        lines += [f"## {heading}", "", text.rstrip(), ""]
    if plots:
        lines += ["## Plots", ""]
        for plot in plots:
            rel = os.path.relpath(plot, run_dir)
            name = os.path.splitext(os.path.basename(plot))[0].replace("_", " ")
            lines += [f"![{name}]({rel})", ""]
    lines += _world_changes(run_dir)
    lines += ["Resolved configuration: [config.yaml](config.yaml)."]
    histories = sorted(n for n in os.listdir(run_dir)
                       if n.startswith("history") and n.endswith(".csv"))
    if histories:
        lines += ["Training history: " + ", ".join(f"[{n}]({n})" for n in histories) + "."]
    return "\n".join(lines) + "\n"
