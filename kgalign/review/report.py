"""A self-contained HTML report of a run, for reading offline and for reviewing decisions.

``write_report(outdir, "report.html")`` reads a run directory (``votes.jsonl``, and
``run.json``, ``metrics.json`` and the links when present) and writes one HTML file
with everything inlined: the data as JSON in a ``<script type="application/json">``
tag, the page's own CSS and JavaScript, and charts the script draws as inline SVG.
The page loads nothing from the network (a Content-Security-Policy forbids it).

Entity text is untrusted: the JSON is escaped so it cannot close its script tag, and
the page writes every value with ``textContent``, never as HTML.

In the page a reviewer accepts, rejects or re-picks decisions and downloads the
verdicts as a corrections file for ``kgalign run --corrections`` (see
:mod:`kgalign.review.corrections`). With ``png_dir`` the same charts are also written as PNG
files with matplotlib.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import logging
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kgalign import __version__
from kgalign.errors import InputError, KgalignError, error_filename
from kgalign.evaluation.metrics import Pair, read_pairs
from kgalign.io.atomic import atomic_open, check_output_path, deferred_renames, write_text_atomic
from kgalign.judging.pairwise import CANDIDATE_FIRST, SOURCE_FIRST
from kgalign.judging.prompt import option_letter
from kgalign.model import local_name
from kgalign.review.corrections import CORRECTIONS_VERSION
from kgalign.review.votes import read_votes, summarise

log = logging.getLogger(__name__)

REPORT_SCHEMA = 1
KINDS = ("match", "none", "uncertain")
ORIGINS = ("judged", "gated", "human", "retrieval")
CONFIDENCE_BINS = 10
THRESHOLD_STEPS = 50
TEMPLATES = "templates"
PNG_CHARTS = ("decisions", "confidence", "positions", "threshold")
REPORT_FILE = "report.html"

# Okabe-Ito colours: told apart with every common colour-vision deficiency.
COLOURS = {
    "match": "#009E73",
    "none": "#999999",
    "uncertain": "#E69F00",
    "judged": "#0072B2",
    "gated": "#56B4E9",
    "human": "#CC79A7",
    "retrieval": "#999999",
    "won": "#0072B2",
    "gold": "#E69F00",
    "precision": "#0072B2",
    "recall": "#D55E00",
    "f1": "#009E73",
}


@dataclass
class ReportResult:
    """What :func:`write_report` wrote."""

    html: Path
    pngs: list[Path] = field(default_factory=list)
    decisions: int = 0


def read_run(outdir: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None, list[Pair] | None]:
    """The decision records, run.json, metrics.json and links of a run directory (the last three may be None)."""
    outdir = Path(outdir)
    votes = outdir / "votes.jsonl"
    if not outdir.is_dir():
        raise InputError(f"{outdir}: not a directory (expected the OUTDIR of `kgalign run`)")
    if not votes.is_file():
        raise InputError(f"{outdir}: no votes.jsonl here (expected the OUTDIR of `kgalign run`)")
    records = list(read_votes(votes))
    run = _read_json(outdir / "run.json")
    metrics = _read_json(outdir / "metrics.json")
    links = None
    for name in ("alignment.rdf", "links.ttl"):
        path = outdir / name
        if path.is_file():
            try:
                links = read_pairs(path)
            except InputError:
                links = []  # a run without links writes files with no cells
            break
    return records, run, metrics, links


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else None


def build_report_data(
    outdir: str | Path,
    gold: str | Path | Sequence[Pair] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready dict (also used for the PNG charts)."""
    outdir = Path(outdir)
    records, run, metrics, links = read_run(outdir)
    gold_name = None
    gold_pairs: list[Pair] | None = None
    if isinstance(gold, (str, Path)):
        gold_name = Path(gold).name
        gold_pairs = read_pairs(gold)
    elif gold is not None:
        gold_name = "gold"
        gold_pairs = list(gold)
    gold_map: dict[str, set[str]] = defaultdict(set)
    for left, right in gold_pairs or []:
        gold_map[left].add(right)
    linked = _linked_targets(records, links)
    decisions = [_decision_view(i, r, linked.get(r["source"]), gold_map if gold_pairs is not None else None) for i, r in enumerate(records)]
    summary = summarise(records)
    counts = (run or {}).get("counts") or {}
    digest = hashlib.sha256()
    for r in records:
        digest.update(f"{r['source']}\t{r['decision']}\t{r.get('target')}\n".encode())
    if run:
        digest.update(str(run.get("started")).encode())
    return {
        "schema": REPORT_SCHEMA,
        "corrections_version": CORRECTIONS_VERSION,
        "title": title or f"kgalign report: {outdir.resolve().name}",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kgalign": __version__,
        "run_id": digest.hexdigest()[:16],
        "run": _run_view(run),
        "counts": counts,
        "metrics": metrics,
        "summary": summary,
        "gold": {"file": gold_name, "pairs": len(set(gold_pairs))} if gold_pairs is not None else None,
        "colours": COLOURS,
        "charts": {
            "decisions": decisions_chart(decisions),
            "confidence": confidence_chart(decisions),
            "positions": (order_chart if summary["pairwise_rounds"] else positions_chart)(records, gold_map if gold_pairs is not None else None),
            "threshold": threshold_chart(decisions, len(set(gold_pairs))) if gold_pairs is not None else None,
        },
        "decisions": decisions,
        "changes": read_changes(outdir),
    }


#: The changes.jsonl records the report lists, and how many at most.
LISTED_CHANGES = ("link_added", "link_removed", "link_changed", "entity_added", "entity_removed", "entity_changed", "clusters_merged", "cluster_split")
MAX_LISTED_CHANGES = 2000


def read_changes(outdir: Path) -> dict[str, Any] | None:
    """The links, entities and clusters an update (``--since``) changed, from its
    changes.jsonl (at most :data:`MAX_LISTED_CHANGES`, links first), with how many there
    are in all; None for a run that was no update. A line that is not a JSON record is a
    one-line error naming it."""
    from kgalign.incremental.since import SINCE_FILE

    path = outdir / SINCE_FILE
    if not path.is_file():
        return None
    found: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise InputError(f"{path}:{number}: not valid JSON ({exc})") from None
                if isinstance(record, dict) and record.get("change") in LISTED_CHANGES:
                    found.append(record)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    found.sort(key=lambda r: LISTED_CHANGES.index(r["change"]) // 3)  # links, then entities, then clusters; stable
    return {"records": found[:MAX_LISTED_CHANGES], "total": len(found)}


def _run_view(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if not run:
        return None
    config = run.get("config") or {}
    vote = config.get("vote") or {}
    keys = ("rounds", "options", "gate", "gate_margin", "early_stop", "plurality")
    return {
        "left": run.get("left"),
        "right": run.get("right"),
        "judge": run.get("judge"),
        "adapter": run.get("adapter"),
        "started": run.get("started"),
        "kgalign": run.get("kgalign"),
        "total_seconds": run.get("total_seconds"),
        "peak_rss_mb": run.get("peak_rss_mb"),
        "seed": run.get("seed"),
        "resolve": config.get("resolve"),
        "cardinality": run.get("cardinality"),
        "since": run.get("since"),
        "clusters": run.get("clusters"),
        "corrections": config.get("corrections"),
        "explain": config.get("explain"),
        "vote": {k: vote[k] for k in keys if k in vote},
        "stages": {name: stage.get("seconds") for name, stage in (run.get("stages") or {}).items() if isinstance(stage, dict)},
    }


def _linked_targets(records: Sequence[dict[str, Any]], links: list[Pair] | None) -> dict[str, str]:
    """Source -> the target it is linked to in the run's output (decisions that lost a conflict have none)."""
    if links is not None:
        return dict(links)
    return {r["source"]: r["target"] for r in records if r["decision"] == "match" and r.get("target") and not r.get("conflict_with")}


def _origin(record: dict[str, Any]) -> str:
    if record.get("human"):
        return "human"
    if record.get("gated"):
        return "gated"
    if record.get("rounds"):
        return "judged"
    return "retrieval"


def _decision_view(index: int, r: dict[str, Any], link: str | None, gold: dict[str, set[str]] | None) -> dict[str, Any]:
    """One decision record trimmed to what the page shows, with its gold verdict."""
    labels = {c["iri"]: c.get("label") or "" for c in r.get("candidates", [])}
    gold_targets = sorted(gold.get(r["source"], ())) if gold is not None else None
    status = None
    if gold_targets is not None:
        if link is not None:
            status = "correct" if link in gold_targets else "wrong"
        else:
            status = "missed" if gold_targets else "correct-none"
    rounds = [
        {
            "order": list(x.get("order", [])),
            "raw": x.get("raw"),
            "choice": x.get("choice"),
            "target": x.get("target"),
            # A pairwise round's probability that the two are the same; else the answer's own.
            "p": x["p_yes"] if x.get("p_yes") is not None else round(math.exp(x["logprob"]), 4) if x.get("logprob") is not None else None,
            "first": x.get("first"),
            "cached": bool(x.get("cached")),
            "error": x.get("error"),
            "step": int(x.get("step") or 0),
        }
        for x in r.get("rounds", [])
    ]
    # A judged set asks several steps a round: the tally and agreement are of each round's first answer.
    firsts = [x for x in rounds if x["step"] == 0]
    tally = Counter(x["target"] if x["target"] is not None else "invalid" for x in firsts)
    target = r.get("target")
    candidates = r.get("candidates", [])
    return {
        "i": index,
        "source": r["source"],
        "source_label": r.get("source_label") or local_name(r["source"]),
        "source_attributes": [[str(a[0]), str(a[1])] for a in r.get("source_attributes", []) if len(a) >= 2],
        "candidates": [
            {"iri": c["iri"], "label": c.get("label") or "", "score": c.get("score"), "rank": c.get("rank")} for c in candidates
        ],
        "top_score": candidates[0].get("score") if candidates else None,
        "margin": r.get("margin"),
        "mutual": r.get("mutual"),
        "rounds": rounds,
        "tally": [[name, n] for name, n in tally.most_common()],
        "agreement": round(tally.most_common(1)[0][1] / len(firsts), 4) if firsts else None,
        "rounds_asked": len(firsts),
        "option_votes": [
            {"iri": v.get("iri"), "picked": v.get("picked"), "rounds": v.get("rounds"), "accepted": bool(v.get("accepted"))}
            for v in r.get("option_votes", [])
        ],
        "decision": r["decision"],
        "target": target,
        "target_label": (labels.get(target) or local_name(target)) if target else "",
        "confidence": r.get("confidence", 0.0),
        "origin": _origin(r),
        "gated": bool(r.get("gated")),
        "early_stopped": bool(r.get("early_stopped")),
        "human": bool(r.get("human")),
        "kept": bool(r.get("kept")),
        "conflict_with": r.get("conflict_with"),
        "explanation": r.get("explanation"),
        "link": link,
        "gold_targets": gold_targets,
        "gold": status,
    }


def decisions_chart(decisions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Decisions by kind, stacked by who made them."""
    counts = Counter((d["decision"], d["origin"]) for d in decisions)
    series = [
        {"name": origin, "values": [counts[(kind, origin)] for kind in KINDS], "colour": COLOURS[origin]}
        for origin in ORIGINS
        if any(counts[(kind, origin)] for kind in KINDS)
    ]
    return {"title": "Decisions by kind", "categories": list(KINDS), "series": series, "x_label": "decision", "y_label": "source entities", "stacked": True}


def confidence_chart(decisions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Histogram of decision confidence in ten bins over [0, 1], stacked by kind."""
    edges = [round(i / CONFIDENCE_BINS, 2) for i in range(CONFIDENCE_BINS + 1)]
    counts: dict[str, list[int]] = {kind: [0] * CONFIDENCE_BINS for kind in KINDS}
    for d in decisions:
        value = min(max(float(d.get("confidence") or 0.0), 0.0), 1.0)
        counts.setdefault(d["decision"], [0] * CONFIDENCE_BINS)[min(int(value * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)] += 1
    categories = [f"{edges[i]:.1f}\u2013{edges[i + 1]:.1f}" for i in range(CONFIDENCE_BINS)]
    series = [{"name": kind, "values": values, "colour": COLOURS.get(kind, "#666666")} for kind, values in counts.items() if any(values)]
    return {"title": "Confidence", "categories": categories, "series": series, "x_label": "confidence", "y_label": "decisions", "stacked": True}


def positions_chart(records: Sequence[dict[str, Any]], gold: dict[str, set[str]] | None) -> dict[str, Any]:
    """How often each option position won a round, and (with gold) where the true match was shown."""
    won: Counter[str] = Counter()
    shown: Counter[str] = Counter()
    width = 0
    for r in records:
        for x in r.get("rounds", []):
            if x.get("first"):
                continue  # a pairwise round shows one candidate: no position to win
            order = x.get("order", [])
            width = max(width, len(order))
            target = x.get("target")
            if target == "none":
                won["none"] += 1
            elif target is None:
                won["invalid"] += 1
            elif target in order:
                won[option_letter(order.index(target))] += 1
            if gold is not None:
                truth = gold.get(r["source"], set())
                hits = [i for i, iri in enumerate(order) if iri in truth]
                shown[option_letter(hits[0]) if hits else "none"] += 1
    categories = [option_letter(i) for i in range(width)] + ["none"] + (["invalid"] if won["invalid"] else [])
    series = [{"name": "rounds won", "values": [won[c] for c in categories], "colour": COLOURS["won"]}]
    if gold is not None:
        series.append({"name": "gold shown here", "values": [shown[c] for c in categories], "colour": COLOURS["gold"]})
    return {
        "title": "Winning option position (position bias)",
        "categories": categories,
        "series": series,
        "x_label": "option position shown to the judge",
        "y_label": "rounds",
        "stacked": False,
    }


def order_chart(records: Sequence[dict[str, Any]], gold: dict[str, set[str]] | None) -> dict[str, Any]:
    """A pairwise run's rounds by the record shown first: the mean probability of yes with
    the source first and with the candidate first, over every pair asked and, with gold,
    over the gold matches and the other pairs apart. The order bias (the card beside it)
    is the same gap measured pair by pair."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: {SOURCE_FIRST: [], CANDIDATE_FIRST: []})
    for r in records:
        truth = gold.get(r["source"], set()) if gold is not None else None
        for x in r.get("rounds", []):
            if x.get("first") not in (SOURCE_FIRST, CANDIDATE_FIRST) or x.get("p_yes") is None or not x.get("order"):
                continue
            groups = ["every pair"] + ([] if truth is None else ["gold matches" if x["order"][0] in truth else "other pairs"])
            for group in groups:
                sums[group][x["first"]].append(float(x["p_yes"]))
    colours = {"every pair": COLOURS["won"], "gold matches": COLOURS["match"], "other pairs": COLOURS["none"]}
    series = [
        {"name": group, "values": [round(sum(ps) / len(ps), 4) if ps else 0 for ps in sums[group].values()], "colour": colours[group]}
        for group in colours
        if group in sums
    ]
    return {
        "title": "Record order (order bias)",
        "categories": ["source first", "candidate first"],
        "series": series,
        "x_label": "record shown first to the judge",
        "y_label": "mean probability of yes",
        "stacked": False,
    }


def threshold_chart(decisions: Sequence[dict[str, Any]], gold_total: int) -> dict[str, Any]:
    """Precision, recall and F1 of the links kept when links below a confidence threshold are dropped."""
    linked = [(float(d.get("confidence") or 0.0), d["gold"] == "correct") for d in decisions if d.get("link")]
    thresholds = [round(i / THRESHOLD_STEPS, 4) for i in range(THRESHOLD_STEPS + 1)]
    precision: list[float | None] = []
    recall: list[float | None] = []
    f1: list[float | None] = []
    for t in thresholds:
        kept = [ok for confidence, ok in linked if confidence >= t - 1e-9]
        tp = sum(kept)
        p = tp / len(kept) if kept else None
        r = tp / gold_total if gold_total else None
        precision.append(round(p, 4) if p is not None else None)
        recall.append(round(r, 4) if r is not None else None)
        f1.append(round(2 * p * r / (p + r), 4) if p is not None and r is not None and p + r else None)
    return {
        "title": "Precision and recall against a confidence threshold",
        "x": thresholds,
        "series": [
            {"name": "precision", "values": precision, "colour": COLOURS["precision"]},
            {"name": "recall", "values": recall, "colour": COLOURS["recall"]},
            {"name": "F1", "values": f1, "colour": COLOURS["f1"]},
        ],
        "x_label": "keep links with confidence \u2265 threshold",
        "y_label": "score",
    }


def embed_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&`` or line separators."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def _template(name: str) -> str:
    return resources.files("kgalign.review").joinpath(TEMPLATES, name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def render_html(data: dict[str, Any]) -> str:
    """The report page: template, CSS, script and data in one string."""
    css = _template("report.css")
    script = _template("report.js")
    for code, closing in ((css, "</style"), (script, "</script")):
        if closing in code.lower():
            raise ValueError(f"report template contains {closing}>")
    csp = (
        "default-src 'none'; "
        f"script-src {_csp_hash(script)}; "
        f"style-src {_csp_hash(css)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    page = _template("report.html")
    replacements = {
        "{{CSP}}": html.escape(csp, quote=True),
        "{{TITLE}}": html.escape(str(data.get("title", "kgalign report"))),
        "{{CSS}}": css,
        "{{SCRIPT}}": script,
        "{{DATA}}": embed_json(data),
    }
    # One pass, so that no replacement is searched for placeholders again.
    out = []
    rest = page
    while "{{" in rest:
        start = rest.index("{{")
        end = rest.index("}}", start) + 2
        key = rest[start:end]
        out.append(rest[:start])
        out.append(replacements[key] if key in replacements else key)
        rest = rest[end:]
    out.append(rest)
    return "".join(out)


def write_report(
    outdir: str | Path,
    output: str | Path | None = None,
    gold: str | Path | Sequence[Pair] | None = None,
    png_dir: str | Path | None = None,
    title: str | None = None,
) -> ReportResult:
    """Write the HTML report of the run in ``outdir`` (:func:`report_path`: default
    ``outdir/report.html``), and PNG charts into ``png_dir`` if asked.

    Where the page or the charts cannot be written, that is found before the run is
    read where it can be, and otherwise no file is written: the page and the charts
    appear together or not at all.
    """
    target = report_path(outdir, output)
    check_output_path(target)
    if png_dir:
        check_output_path(png_dir, folder=True, what="--png")
        for name in PNG_CHARTS:
            check_output_path(Path(png_dir) / f"{name}.png", what="--png")
    data = build_report_data(outdir, gold, title)
    new_png_dir = Path(png_dir) if png_dir and not Path(png_dir).exists() else None
    try:
        with deferred_renames():
            write_text_atomic(target, render_html(data))
            pngs = write_pngs(data, png_dir) if png_dir else []
    except OSError as exc:
        _remove_empty(new_png_dir)
        raise KgalignError(f"{error_filename(exc, target)}: cannot write the report ({exc.strerror or exc})") from None
    except BaseException:
        _remove_empty(new_png_dir)
        raise
    log.info("wrote %s (%d decisions)", target, len(data["decisions"]))
    return ReportResult(html=target, pngs=pngs, decisions=len(data["decisions"]))


def report_path(outdir: str | Path, output: str | Path | None = None) -> Path:
    """Where the page goes: ``output``; its ``report.html`` where ``output`` is an existing
    folder or a name ending in a slash; ``outdir/report.html`` without ``output``."""
    if output is None or not str(output):
        return Path(outdir) / REPORT_FILE
    text = os.fspath(output)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return Path(text) / REPORT_FILE
    return Path(text)


def _remove_empty(folder: Path | None) -> None:
    """Remove ``folder`` (one this call made) if nothing is in it."""
    if folder is not None:
        with contextlib.suppress(OSError):
            folder.rmdir()


def write_pngs(data: dict[str, Any], directory: str | Path) -> list[Path]:
    """The page's charts as PNG files (matplotlib, Agg canvas): decisions, confidence, positions, threshold."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PNG_CHARTS:
        chart = data["charts"].get(name)
        if not chart:
            continue
        figure = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        if "x" in chart:
            _plot_lines(axes, chart)
        else:
            _plot_bars(axes, chart)
        axes.set_title(chart["title"], fontsize=11)
        axes.set_xlabel(chart["x_label"])
        axes.set_ylabel(chart["y_label"])
        axes.spines[["top", "right"]].set_visible(False)
        path = directory / f"{name}.png"
        with atomic_open(path, "wb") as handle:
            figure.savefig(handle, format="png")
        written.append(path)
    log.info("wrote %d PNG charts to %s", len(written), directory)
    return written


def _plot_bars(axes: Any, chart: dict[str, Any]) -> None:
    categories = chart["categories"]
    positions = list(range(len(categories)))
    series = chart["series"]
    if chart.get("stacked"):
        bottom = [0] * len(categories)
        for s in series:
            axes.bar(positions, s["values"], bottom=bottom, color=s["colour"], label=s["name"], width=0.7)
            bottom = [b + v for b, v in zip(bottom, s["values"])]
    else:
        width = 0.8 / max(len(series), 1)
        for k, s in enumerate(series):
            offset = (k - (len(series) - 1) / 2) * width
            axes.bar([p + offset for p in positions], s["values"], width=width, color=s["colour"], label=s["name"])
    axes.set_xticks(positions, categories, rotation=30 if len(categories) > 6 else 0, fontsize=8)
    if series:
        axes.legend(fontsize=8, frameon=False)


def _plot_lines(axes: Any, chart: dict[str, Any]) -> None:
    for s in chart["series"]:
        points = [(x, y) for x, y in zip(chart["x"], s["values"]) if y is not None]
        if points:
            axes.plot([p[0] for p in points], [p[1] for p in points], color=s["colour"], label=s["name"], linewidth=2)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, frameon=False)

