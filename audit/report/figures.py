"""The reports' figures as SVG geometry (Python computes every coordinate; templates draw them): the
position x method agreement heatmap, each position's neighbourhood map with labels placed so that they do
not overlap, and the behavioural check's impact-ratio chart."""

from __future__ import annotations

from audit.records import AttributeDisparity, AuditResult, PositionResult
from audit.report.format import method_names, shown
from audit.report.i18n import strings
from audit.report.tokens import codepoints

HEAT_LOW, HEAT_HIGH = (247, 251, 255), (8, 48, 107)
MAP_W, MAP_H, MAP_PAD = 460, 340, 22
CHAR_W, LABEL_H = 6.7, 11.0  # an 11 px monospace label: advance per character, line height
CHART_W, ROW_H, LABEL_W, AXIS_MAX = 360, 22, 110, 1.5  # the impact-ratio chart


def _heat_colour(value: float) -> str:
    rgb = [round(lo + (hi - lo) * value) for lo, hi in zip(HEAT_LOW, HEAT_HIGH)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def heatmap(result: AuditResult, cell: int = 22, label_w: int = 90, head_h: int = 70) -> dict:
    """SVG geometry of the position x method agreement heatmap: for each cell, the share of the other
    agreement methods whose top-1 equals this method's top-1."""
    methods = list(result.methods)
    others = list(result.agreement_methods)
    rects = []
    for row, pos in enumerate(result.positions):
        for col, method in enumerate(methods):
            peers = [m for m in others if m != method]
            same = sum(pos.projections[m].token_id == pos.projections[method].token_id for m in peers)
            value = same / len(peers) if peers else 1.0
            rects.append(
                {
                    "x": label_w + col * cell,
                    "y": head_h + row * cell,
                    "fill": _heat_colour(value),
                    "title": f"{pos.index} / {method}: {shown(pos.projections[method].token)} ({value:.2f})",
                }
            )
    return {
        "width": label_w + cell * len(methods) + 4,
        "height": head_h + cell * len(result.positions) + 4,
        "cell": cell,
        "side": cell - 1,
        "rects": rects,
        "cols": [
            {"x": label_w + i * cell + cell // 2, "y": head_h - 6, "label": m} for i, m in enumerate(methods)
        ],
        "rows": [
            {"x": label_w - 6, "y": head_h + i * cell + cell * 2 // 3, "label": str(p.index)}
            for i, p in enumerate(result.positions)
        ],
    }


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_box(x: float, y: float, width: float, anchor: str) -> Box:
    x0 = {"start": x, "end": x - width, "middle": x - width / 2}[anchor]
    return (x0, y - 0.8 * LABEL_H, x0 + width, y + 0.25 * LABEL_H)


def _place_label(
    cx: float, cy: float, r: float, width: float, taken: list[Box], required: bool
) -> tuple[float, float, str, bool] | None:
    """The first spot around a point (right, left, above, below, diagonals; then twice as far, with a
    leader line) where the label overlaps no other label or point and stays inside the map."""
    for far in (1.0, 2.6):
        d = (r + 3) * far
        for dx, dy, anchor in (
            (d, 4, "start"),
            (-d, 4, "end"),
            (0, -d - 1, "middle"),
            (0, d + LABEL_H, "middle"),
            (d, -d, "start"),
            (d, d + LABEL_H - 2, "start"),
            (-d, -d, "end"),
            (-d, d + LABEL_H - 2, "end"),
        ):
            x, y = cx + dx, cy + dy
            box = _label_box(x, y, width, anchor)
            inside = box[0] >= 1 and box[1] >= 1 and box[2] <= MAP_W - 1 and box[3] <= MAP_H - 1
            if inside and not any(_overlaps(box, other) for other in taken):
                return round(x, 1), round(y, 1), anchor, far > 1
    if required:  # keep the label even where it must overlap: the prompt, a reading, a sensitive token
        return round(cx + r + 3, 1), round(cy + 4, 1), "start", False
    return None


def position_map(result: AuditResult, pos: PositionResult, lang: str) -> dict:
    """SVG geometry of one position's neighbourhood map: points scaled into the map with one scale for
    both axes, labels placed greedily so that they do not overlap (prompt, top-1 readings and sensitive
    tokens first, kept even where they must overlap; a plain neighbour's label that does not fit is left
    to the table and the point's tooltip)."""
    t = strings(lang)
    points = pos.map_points
    if not points:
        return {"width": MAP_W, "height": MAP_H, "points": [], "labels": []}
    xs, ys = [p.x for p in points], [p.y for p in points]
    span_x, span_y = max(max(xs) - min(xs), 1e-9), max(max(ys) - min(ys), 1e-9)
    scale = min((MAP_W - 2 * MAP_PAD) / span_x, (MAP_H - 2 * MAP_PAD) / span_y)
    off_x = (MAP_W - scale * span_x) / 2
    off_y = (MAP_H - scale * span_y) / 2
    top1: dict[int, list[str]] = {}
    for method in result.methods:  # the report's method order (a re-read JSON has its keys sorted)
        top1.setdefault(pos.projections[method].token_id, []).append(method)
    out = []
    for i, p in enumerate(points):
        kind = "prompt" if p.token_id < 0 else ("sensitive" if p.sensitive else "other")
        methods = top1.get(p.token_id, []) if p.token_id >= 0 else []
        if kind == "prompt":
            label, title = t["map_prompt"], t["position_n"].format(pos=pos.index)
        else:
            label = t["map_top1"].format(token=shown(p.token)) if methods else shown(p.token)
            cp = codepoints(p.token)
            title = shown(p.token) + (f" {cp}" if cp else "")
            title += f" (top-1: {method_names(methods, result)})" if methods else ""
        out.append(
            {
                "order": (0 if kind == "prompt" else 1 if methods else 2 if kind == "sensitive" else 3, i),
                "cx": round(off_x + (p.x - min(xs)) * scale, 1),
                "cy": round(off_y + (p.y - min(ys)) * scale, 1),
                "r": 6 if kind == "prompt" else 5 if methods else 4 if kind == "sensitive" else 3,
                "kind": kind,
                "top1": bool(methods),
                "label": label,
                "title": title,
            }
        )
    taken: list[Box] = [(p["cx"] - p["r"], p["cy"] - p["r"], p["cx"] + p["r"], p["cy"] + p["r"]) for p in out]
    labels = []
    for p in sorted(out, key=lambda p: p["order"]):
        width = len(p["label"]) * CHAR_W * (1.08 if p["top1"] else 1.0)
        spot = _place_label(p["cx"], p["cy"], p["r"], width, taken, required=p["order"][0] < 3)
        if spot is None:
            continue
        x, y, anchor, leader = spot
        taken.append(_label_box(x, y, width, anchor))
        labels.append(
            {
                "x": x,
                "y": y,
                "anchor": anchor,
                "text": p["label"],
                "cls": "top1" if p["top1"] else p["kind"],
                "leader": {"x1": p["cx"], "y1": p["cy"], "x2": x, "y2": round(y - 4, 1)} if leader else None,
            }
        )
    # neighbours first, the prompt ring last (drawn on top)
    out.sort(key=lambda p: (("other", "sensitive", "prompt").index(p["kind"]), p["top1"], p["order"][1]))
    for p in out:
        del p["order"]
    return {"width": MAP_W, "height": MAP_H, "points": out, "labels": labels}


def _x(value: float) -> float:
    return round(LABEL_W + min(max(value, 0.0), AXIS_MAX) / AXIS_MAX * CHART_W, 1)


def chart(attribute: AttributeDisparity, threshold: float) -> dict:
    """SVG geometry: one row per group, a dot at the impact ratio and a whisker over its CI; the dashed line
    at ``threshold`` (the behavioural rule's impact-ratio threshold)."""
    rows = []
    for i, g in enumerate(attribute.groups):
        y = 18 + i * ROW_H
        ratio = 1.0 if g.is_reference else g.impact_ratio
        rows.append(
            {
                "label": g.id,
                "y": y,
                "ty": y + 4,
                "cx": None if ratio is None else _x(ratio),
                "x1": None if g.ci_low is None else _x(g.ci_low),
                "x2": None if g.ci_high is None else _x(g.ci_high),
                "flagged": ratio is not None and ratio < threshold and not g.is_reference,
            }
        )
    height = 18 + len(rows) * ROW_H
    ticks = [{"x": _x(v), "label": f"{v:g}"} for v in (0.0, 0.5, 0.8, 1.0, 1.5)]
    return {
        "width": LABEL_W + CHART_W + 20,
        "height": height + 18,
        "axis_y": height,
        "tick_y": height + 14,
        "threshold_x": _x(threshold),
        "rows": rows,
        "ticks": ticks,
    }
