"""Inline SVG drawings for the HTML report: the DAG by layers, and the node timeline.

Laid out here, with no library and nothing fetched: a node's column is its plan layer
(``pentora.plan``: 1 + the deepest dependency), its row its place in that layer in
definition order; edges are curves from a dependency's right edge to the node's left.
The timeline puts each node's start/end on one time axis. Every label is escaped
(``esc``): node ids come from the user's DAG, errors may quote a target.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from typing import Any

from pentora_plugins.output.formats._model import GraphNode

from pentora import clean_text as clean

STATUS_COLORS = {"completed": "#8fd18f", "failed": "#ef8a8a", "cancelled": "#f2d16b",
                 "skipped": "#d0d0d0", "running": "#8ec1ef", "pending": "#ffffff"}
MAX_DRAWN = 400  # beyond this a drawing is unreadable and the page heavy: say so instead

BOX_W, BOX_H, COL_W, ROW_H, PAD = 170, 42, 220, 58, 16
LABEL_W, PLOT_W, BAR_H, LINE_H = 210, 640, 14, 22


def esc(value: Any, limit: int | None = 120) -> str:
    return html.escape(clean(value, limit), quote=True)


def color(status: str) -> str:
    return STATUS_COLORS.get(status, "#ffffff")


def _too_many(kind: str, count: int) -> str:
    return (f'<p class="note">The {kind} has {count} nodes, too many to draw (limit {MAX_DRAWN}); '
            "the node table below lists them all, and <code>pentora dag graph FILE --format dot</code> "
            "draws the DAG.</p>")


def _title(n: GraphNode) -> str:
    took = f", {n.duration_ms:.1f} ms" if isinstance(n.duration_ms, int | float) else ""
    detail = f": {n.detail}" if n.detail else ""
    return esc(f"{n.id} ({n.module_type}) {n.status}{took}{detail}", 400)


def dag_svg(nodes: list[GraphNode]) -> str:
    """The DAG, each node a box filled with its status colour."""
    if not nodes:
        return '<p class="note">No DAG was recorded.</p>'
    if len(nodes) > MAX_DRAWN:
        return _too_many("DAG", len(nodes))
    rows: dict[int, int] = defaultdict(int)
    where: dict[str, tuple[int, int]] = {}
    for n in nodes:
        where[n.id] = (PAD + n.layer * COL_W, PAD + rows[n.layer] * ROW_H)
        rows[n.layer] += 1
    width = PAD * 2 + (max(rows) + 1) * COL_W - (COL_W - BOX_W)
    height = PAD * 2 + max(rows.values()) * ROW_H - (ROW_H - BOX_H)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>DAG: {len(nodes)} nodes</title>',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#667"/></marker></defs>']
    for n in nodes:
        x2, y2 = where[n.id]
        for dep in n.depends_on:
            if dep not in where:
                continue
            x1, y1 = where[dep][0] + BOX_W, where[dep][1] + BOX_H // 2
            y2c = y2 + BOX_H // 2
            parts.append(f'<path class="edge" d="M{x1},{y1} C{x1 + 30},{y1} {x2 - 30},{y2c} {x2},{y2c}" '
                         'fill="none" stroke="#667" stroke-width="1.3" marker-end="url(#arrow)"/>')
    for n in nodes:
        x, y = where[n.id]
        parts.append(
            f'<g class="node" data-node="{esc(n.id, None)}" data-status="{esc(n.status)}">'
            f"<title>{_title(n)}</title>"
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="7" fill="{color(n.status)}" '
            'stroke="#445" stroke-width="1"/>'
            f'<text x="{x + 8}" y="{y + 17}" class="id">{esc(n.id, 24)}</text>'
            f'<text x="{x + 8}" y="{y + 33}" class="mt">{esc(n.module_type, 26)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _ticks(span: float) -> list[float]:
    """Axis marks at a round step (1, 2 or 5 × a power of ten), at most about six."""
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude)
    return [i * step for i in range(int(span / step) + 1)]


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def timeline_svg(nodes: list[GraphNode], scan_start: float | None) -> str:
    """One bar per node from its start to its end, on the scan's time axis."""
    ran = [n for n in nodes if n.started is not None]
    if not ran:
        return '<p class="note">No node started.</p>'
    if len(nodes) > MAX_DRAWN:
        return _too_many("timeline", len(nodes))
    t0 = min([n.started for n in ran if n.started is not None] + ([scan_start] if scan_start else []))
    t1 = max((n.finished or n.started or t0) for n in ran)
    span = max(t1 - t0, 0.001)
    scale = PLOT_W / span
    height = PAD * 2 + 24 + len(nodes) * LINE_H
    width = LABEL_W + PLOT_W + PAD * 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>node timeline</title>']
    for t in _ticks(span):
        x = LABEL_W + t * scale
        parts.append(f'<line x1="{x:.1f}" y1="{PAD}" x2="{x:.1f}" y2="{height - PAD}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="{PAD + 10}" class="tick">{_fmt(t)}</text>')
    for i, n in enumerate(nodes):
        y = PAD + 24 + i * LINE_H
        parts.append(f'<text x="{LABEL_W - 8}" y="{y + BAR_H - 3}" class="label">{esc(n.id, 28)}</text>')
        if n.started is None:
            parts.append(f'<text x="{LABEL_W + 4}" y="{y + BAR_H - 3}" class="notrun">'
                         f"not run ({esc(n.status)})</text>")
            continue
        x = LABEL_W + (n.started - t0) * scale
        w = max(((n.finished or t1) - n.started) * scale, 2.0)
        parts.append(f'<g class="bar" data-node="{esc(n.id, None)}"><title>{_title(n)}</title>'
                     f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{BAR_H}" rx="3" '
                     f'fill="{color(n.status)}" stroke="#445" stroke-width="0.8"/></g>')
    parts.append("</svg>")
    return "".join(parts)
