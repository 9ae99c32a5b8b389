/* kgalign report: renders the embedded run data. No libraries, no network.
 * Every piece of data is written with textContent or as an SVG/HTML attribute value,
 * never parsed as HTML: entity text is untrusted. */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("kgalign-data").textContent);
  var SVG_NS = "http://www.w3.org/2000/svg";
  var PAGE = 200;
  var STORE_KEY = "kgalign-corrections:" + DATA.run_id;
  var DECISIONS = DATA.decisions || [];
  var BY_SOURCE = new Map();
  DECISIONS.forEach(function (d) { BY_SOURCE.set(d.source, d); });

  var state = {
    query: "",
    kind: "all",
    sortKey: "i",
    sortDir: 1,
    shown: PAGE,
    expanded: new Set(),
    marks: new Map()
  };

  /* ---------- small DOM helpers ---------- */

  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function s(tag, attrs, children) {
    var node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) { return; }
    Object.keys(attrs).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) { return; }
      if (key === "text") { node.textContent = String(value); return; }
      if (key.slice(0, 2) === "on") { node.addEventListener(key.slice(2), value); return; }
      node.setAttribute(key, value === true ? "" : String(value));
    });
  }

  function append(node, children) {
    if (children === null || children === undefined) { return; }
    if (!Array.isArray(children)) { children = [children]; }
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) { return; }
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    });
  }

  function fmt(value, digits) {
    if (value === null || value === undefined || value === "") { return "\u2013"; }
    if (typeof value !== "number") { return String(value); }
    if (Number.isInteger(value) && digits === undefined) { return value.toLocaleString("en-US"); }
    return value.toFixed(digits === undefined ? 3 : digits);
  }

  function localName(iri) {
    if (!iri) { return ""; }
    var seps = ["#", "/", ":"];
    for (var i = 0; i < seps.length; i++) {
      var at = iri.lastIndexOf(seps[i]);
      if (at >= 0 && at < iri.length - 1) { return iri.slice(at + 1); }
    }
    return iri;
  }

  function fileName(path) {
    if (!path) { return ""; }
    var parts = String(path).split(/[\\/]/);
    return parts[parts.length - 1];
  }

  /* ---------- header and summary ---------- */

  function renderHeader() {
    var run = DATA.run;
    var parts = [];
    if (run) {
      parts.push(fileName(run.left) + " \u2194 " + fileName(run.right));
      if (run.judge) { parts.push("judge " + run.judge); }
      if (run.started) { parts.push("run " + run.started); }
      if (typeof run.total_seconds === "number") { parts.push(run.total_seconds.toFixed(1) + " s"); }
      if (run.corrections) { parts.push("corrections " + fileName(run.corrections)); }
    }
    if (DATA.gold) { parts.push("gold " + DATA.gold.file + " (" + DATA.gold.pairs + " pairs)"); }
    document.getElementById("meta").textContent = parts.join(" \u00b7 ");
    document.getElementById("footer").textContent =
      "Report generated " + DATA.generated + " by kgalign " + DATA.kgalign + ". Self-contained: no network access.";
  }

  function goldMetrics() {
    if (!DATA.gold) { return null; }
    var linked = DECISIONS.filter(function (d) { return d.link; });
    var tp = linked.filter(function (d) { return d.gold === "correct"; }).length;
    var p = linked.length ? tp / linked.length : 0;
    var r = DATA.gold.pairs ? tp / DATA.gold.pairs : 0;
    return { precision: p, recall: r, f1: p + r ? 2 * p * r / (p + r) : 0 };
  }

  function cardinalityValue() {
    var card = DATA.run && DATA.run.cardinality;
    if (!card || !card.resolve) { return null; }
    return card.detected ? card.choice : card.resolve;
  }

  function cardinalityLabel() {
    var card = DATA.run && DATA.run.cardinality;
    if (!card || !card.detected) { return "Cardinality (given)"; }
    var label = "Cardinality, detected: " + Math.round(100 * card.left_share) + "% left, " + Math.round(100 * card.right_share) + "% right with several";
    if (card.retrieval_choice && card.retrieval_choice !== card.choice) {
      label += "; the judge revised it from " + card.retrieval_choice;
    } else if (card.judge && (card.judge.left_rate != null || card.judge.right_rate != null)) {
      label += "; kept after the judge's answers";
    }
    return label;
  }

  function sinceLinks(kind) {
    var since = DATA.run && DATA.run.since;
    return since && since.links ? since.links[kind] : null;
  }

  function sinceEntities() {
    var since = DATA.run && DATA.run.since;
    if (!since || !since.entities) { return null; }
    var e = since.entities;
    return "left +" + e.left.added + " \u2212" + e.left.removed + " ~" + e.left.changed + ", right +" + e.right.added + " \u2212" + e.right.removed + " ~" + e.right.changed;
  }

  function sinceAsked() {
    var asked = DATA.run && DATA.run.since && DATA.run.since.asked;
    if (!asked) { return null; }
    return Object.keys(asked).reduce(function (sum, reason) { return sum + asked[reason]; }, 0);
  }

  function largestCluster() {
    var sizes = DATA.run && DATA.run.clusters && DATA.run.clusters.sizes;
    if (!sizes) { return null; }
    var keys = Object.keys(sizes).map(Number);
    return keys.length ? Math.max.apply(null, keys) : null;
  }

  function renderSummary() {
    var c = DATA.counts || {};
    var sm = DATA.summary || {};
    var kinds = sm.decisions || {};
    var cards = [
      ["Source entities", c.entities_left !== undefined ? c.entities_left : sm.entities],
      ["Target entities", c.entities_right],
      ["Links", c.links],
      ["Matches", kinds.match || 0],
      ["No match", kinds.none || 0],
      ["Uncertain", kinds.uncertain || 0],
      ["Judged by LLM", sm.judged],
      ["Gated", sm.gated],
      ["Human", sm.human],
      ["Conflicts lost", sm.conflicts],
      ["LLM questions", c.llm_questions],
      ["Cache hits", c.cache_hits],
      ["Prompt tokens (logged rounds)", sm.prompt_tokens],
      ["Round agreement", typeof sm.mean_round_agreement === "number" ? sm.mean_round_agreement.toFixed(3) : null],
      ["Order bias (p source first \u2212 second)", typeof sm.order_bias === "number" ? (sm.order_bias >= 0 ? "+" : "") + sm.order_bias.toFixed(3) : null],
      ["Run time (s)", DATA.run && typeof DATA.run.total_seconds === "number" ? DATA.run.total_seconds.toFixed(1) : null],
      [cardinalityLabel(), cardinalityValue()],
      ["Clusters", c.clusters],
      ["Largest cluster", largestCluster()],
      ["Clusters split", DATA.run && DATA.run.clusters && typeof DATA.run.clusters.split === "number" ? DATA.run.clusters.split : null],
      ["Clusters flagged", DATA.run && DATA.run.clusters && DATA.run.clusters.flagged ? DATA.run.clusters.flagged.length : null],
      ["Links added since OLD", sinceLinks("added")],
      ["Links removed since OLD", sinceLinks("removed")],
      ["Links changed since OLD", sinceLinks("changed")],
      ["Entities changed since OLD", sinceEntities()],
      ["Sources asked since OLD", sinceAsked()]
    ];
    var box = document.getElementById("cards");
    cards.forEach(function (card) {
      if (card[1] === undefined || card[1] === null) { return; }
      box.appendChild(h("div", { "class": "card", "data-name": card[0] }, [
        h("div", { "class": "value", text: fmt(card[1]) }),
        h("div", { "class": "label", text: card[0] })
      ]));
    });
    var metrics = DATA.metrics;
    var source = "metrics.json";
    if (DATA.gold) {
      metrics = Object.assign({}, metrics || {}, goldMetrics());
      source = "gold file " + DATA.gold.file;
    }
    if (metrics) {
      [["Precision", "precision"], ["Recall", "recall"], ["F1", "f1"], ["Hits@1", "hits@1"], ["Hits@10", "hits@10"], ["MRR", "mrr"]]
        .forEach(function (m) {
          if (typeof metrics[m[1]] !== "number") { return; }
          box.appendChild(h("div", { "class": "card metric", "data-name": m[0] }, [
            h("div", { "class": "value", text: fmt(metrics[m[1]], 3) }),
            h("div", { "class": "label", text: m[0] })
          ]));
        });
      document.getElementById("metrics-note").textContent = "Quality scores from the " + source + ".";
    }
  }

  /* ---------- charts (inline SVG) ---------- */

  var W = 480, H = 250, M = { l: 46, r: 12, t: 10, b: 50 };

  function niceStep(max, count) {
    if (max <= 0) { return 1; }
    var raw = max / count;
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * power >= raw) { return Math.max(steps[i] * power, max < 5 ? 1 : 0); }
    }
    return 10 * power;
  }

  function chartFrame(figure, chart) {
    figure.appendChild(h("figcaption", { text: chart.title }));
    return s("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": chart.title }, [s("title", { text: chart.title })]);
  }

  function legend(figure, series) {
    var box = h("div", { "class": "legend" });
    series.forEach(function (item) {
      var swatch = h("span", { "class": "swatch" });
      swatch.style.backgroundColor = item.colour;
      box.appendChild(h("span", null, [swatch, item.name]));
    });
    figure.appendChild(box);
  }

  function axisLabels(svg, chart) {
    svg.appendChild(s("text", { x: M.l + (W - M.l - M.r) / 2, y: H - 4, "text-anchor": "middle", text: chart.x_label }));
    svg.appendChild(s("text", { x: 12, y: M.t + (H - M.t - M.b) / 2, "text-anchor": "middle",
      transform: "rotate(-90 12 " + (M.t + (H - M.t - M.b) / 2) + ")", text: chart.y_label }));
  }

  function yAxis(svg, max, step, format) {
    var plotH = H - M.t - M.b;
    var grid = s("g", { "class": "grid" });
    var axis = s("g", { "class": "axis" });
    for (var v = 0; v <= max + 1e-9; v += step) {
      var y = M.t + plotH - (v / max) * plotH;
      grid.appendChild(s("line", { x1: M.l, x2: W - M.r, y1: y, y2: y }));
      axis.appendChild(s("text", { x: M.l - 6, y: y + 4, "text-anchor": "end", text: format(v) }));
    }
    axis.appendChild(s("line", { x1: M.l, x2: M.l, y1: M.t, y2: M.t + plotH }));
    axis.appendChild(s("line", { x1: M.l, x2: W - M.r, y1: M.t + plotH, y2: M.t + plotH }));
    svg.appendChild(grid);
    svg.appendChild(axis);
  }

  function barChart(figure, chart) {
    var svg = chartFrame(figure, chart);
    var cats = chart.categories || [];
    var series = chart.series || [];
    var totals = cats.map(function (_, i) {
      return chart.stacked
        ? series.reduce(function (sum, item) { return sum + (item.values[i] || 0); }, 0)
        : Math.max.apply(null, [0].concat(series.map(function (item) { return item.values[i] || 0; })));
    });
    var peak = Math.max.apply(null, [0].concat(totals));
    if (!series.length || peak === 0) {
      figure.appendChild(h("div", { "class": "empty", text: "Nothing to show for this run." }));
      return;
    }
    var step = niceStep(peak, 5);
    var max = Math.ceil(peak / step) * step;
    yAxis(svg, max, step, function (v) { return String(Math.round(v * 100) / 100); });
    var plotW = W - M.l - M.r, plotH = H - M.t - M.b;
    var band = plotW / cats.length;
    var barW = band * 0.7;
    var bars = s("g", { "class": "bars" });
    cats.forEach(function (cat, i) {
      var x0 = M.l + i * band + (band - barW) / 2;
      var base = 0;
      series.forEach(function (item, k) {
        var value = item.values[i] || 0;
        if (!value) { return; }
        var x = chart.stacked ? x0 : x0 + k * (barW / series.length);
        var w = chart.stacked ? barW : barW / series.length;
        var y0 = chart.stacked ? base : 0;
        var rect = s("rect", {
          x: x, width: Math.max(w - 1, 1),
          y: M.t + plotH - ((y0 + value) / max) * plotH,
          height: (value / max) * plotH,
          fill: item.colour, "data-series": item.name, "data-category": cat, "data-value": value
        }, [s("title", { text: item.name + ", " + cat + ": " + value })]);
        bars.appendChild(rect);
        if (chart.stacked) { base += value; }
      });
      var label = s("text", { x: M.l + i * band + band / 2, y: M.t + plotH + 14, "text-anchor": "middle", text: cat });
      if (cats.length > 6) {
        label.setAttribute("transform", "rotate(-30 " + (M.l + i * band + band / 2) + " " + (M.t + plotH + 14) + ")");
        label.setAttribute("text-anchor", "end");
      }
      bars.appendChild(label);
    });
    svg.appendChild(bars);
    axisLabels(svg, chart);
    figure.appendChild(svg);
    legend(figure, series);
  }

  function lineChart(figure, chart) {
    var svg = chartFrame(figure, chart);
    var plotW = W - M.l - M.r, plotH = H - M.t - M.b;
    yAxis(svg, 1, 0.2, function (v) { return v.toFixed(1); });
    var ticks = s("g", { "class": "axis" });
    for (var t = 0; t <= 1.0001; t += 0.2) {
      ticks.appendChild(s("text", { x: M.l + t * plotW, y: M.t + plotH + 14, "text-anchor": "middle", text: t.toFixed(1) }));
    }
    svg.appendChild(ticks);
    chart.series.forEach(function (item) {
      var segments = [];
      var current = [];
      chart.x.forEach(function (x, i) {
        var y = item.values[i];
        if (y === null || y === undefined) {
          if (current.length) { segments.push(current); current = []; }
          return;
        }
        current.push((M.l + x * plotW).toFixed(1) + "," + (M.t + plotH - y * plotH).toFixed(1));
      });
      if (current.length) { segments.push(current); }
      segments.forEach(function (points) {
        svg.appendChild(s("polyline", { points: points.join(" "), fill: "none", stroke: item.colour, "stroke-width": 2,
          "data-series": item.name }, [s("title", { text: item.name })]));
      });
    });
    axisLabels(svg, chart);
    figure.appendChild(svg);
    legend(figure, chart.series);
  }

  function iriCell(iri) {
    return h("td", { title: iri || null, text: iri ? localName(iri) : "" });
  }

  function renderChanges() {
    var changes = DATA.changes;
    if (!changes) { return; }
    document.getElementById("changes").hidden = false;
    var body = document.querySelector("#changes-table tbody");
    changes.records.forEach(function (r) {
      var kind = r.change.replace(/_/g, " ");
      var cells;
      if (r.change.indexOf("entity_") === 0) {
        cells = r.side === "left" ? [iriCell(r.iri), iriCell(null)] : [iriCell(null), iriCell(r.iri)];
        cells.push(iriCell(null), h("td", { text: "" }));
      } else if (r.members) {
        var names = r.members.map(function (m) { return localName(m.slice(2)); });
        cells = [h("td", { title: r.members.join(" "), text: names.join(", ") }), iriCell(null), iriCell(null),
          h("td", { text: r.change === "cluster_split" ? "into " + r.into + " clusters" : "from " + r.from + " clusters" })];
      } else {
        cells = [iriCell(r.left), iriCell(r.right), iriCell(r.old_right), h("td", { text: r.reason || "" })];
      }
      body.appendChild(h("tr", { "data-change": r.change }, [h("td", { text: kind })].concat(cells)));
    });
    var shown = changes.records.length;
    document.getElementById("changes-note").textContent = shown < changes.total
      ? "The first " + fmt(shown) + " of " + fmt(changes.total) + " changes (links first); changes.jsonl lists them all."
      : fmt(changes.total) + " changes of links, entities and clusters (changes.jsonl), links first.";
  }

  function renderCharts() {
    var charts = DATA.charts || {};
    barChart(document.getElementById("chart-decisions"), charts.decisions);
    barChart(document.getElementById("chart-confidence"), charts.confidence);
    barChart(document.getElementById("chart-positions"), charts.positions);
    var figure = document.getElementById("chart-threshold");
    if (charts.threshold) {
      lineChart(figure, charts.threshold);
    } else {
      figure.appendChild(h("figcaption", { text: "Precision and recall against a confidence threshold" }));
      figure.appendChild(h("div", { "class": "empty", text: "Needs gold links: kgalign report OUTDIR --gold FILE." }));
    }
  }

  /* ---------- corrections (marks) ---------- */

  function loadMarks() {
    DECISIONS.forEach(function (d) {
      if (d.human) {
        state.marks.set(d.source, {
          action: d.decision === "match" ? "accept" : "reject",
          target: d.target || null,
          note: d.explanation || "",
          carried: true
        });
      }
    });
    var stored = null;
    try { stored = JSON.parse(window.localStorage.getItem(STORE_KEY) || "null"); } catch (err) { stored = null; }
    if (stored && typeof stored === "object") {
      Object.keys(stored).forEach(function (source) {
        if (!BY_SOURCE.has(source)) { return; }
        var mark = stored[source];
        if (mark === null) { state.marks.delete(source); }
        else if (mark && ["accept", "reject", "pick"].indexOf(mark.action) >= 0) { state.marks.set(source, mark); }
      });
    }
  }

  function saveMarks() {
    var out = {};
    DECISIONS.forEach(function (d) {
      var mark = state.marks.get(d.source);
      if (mark) { out[d.source] = mark; }
      else if (d.human) { out[d.source] = null; }
    });
    try { window.localStorage.setItem(STORE_KEY, JSON.stringify(out)); } catch (err) { /* storage may be off for file pages */ }
    updateToolbar();
  }

  function setMark(d, action, target) {
    var old = state.marks.get(d.source);
    if (action === null) { state.marks.delete(d.source); }
    else {
      state.marks.set(d.source, { action: action, target: target === undefined ? null : target, note: old ? old.note || "" : "" });
    }
    saveMarks();
    render();
  }

  function correctionLines() {
    var lines = [];
    DECISIONS.forEach(function (d) {
      var mark = state.marks.get(d.source);
      if (!mark) { return; }
      var record = {
        version: DATA.corrections_version,
        source: d.source,
        action: mark.action,
        target: mark.action === "pick" ? mark.target : (mark.target || d.target || null)
      };
      if (mark.note) { record.note = mark.note; }
      record.judge_decision = d.decision;
      record.judge_target = d.target || null;
      lines.push(JSON.stringify(record));
    });
    return lines;
  }

  function download() {
    var lines = correctionLines();
    if (!lines.length) { return; }
    var blob = new Blob([lines.join("\n") + "\n"], { type: "application/x-ndjson" });
    var url = URL.createObjectURL(blob);
    var link = h("a", { href: url, download: "corrections.jsonl", hidden: true });
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
  }

  function updateToolbar() {
    var n = correctionLines().length;
    var button = document.getElementById("download");
    button.textContent = "Download corrections (" + n + ")";
    button.disabled = n === 0;
    document.getElementById("clear-corrections").disabled = state.marks.size === 0;
  }

  function reviewText(d) {
    var mark = state.marks.get(d.source);
    if (!mark) { return null; }
    if (mark.action === "accept") { return { cls: "review-accept", text: "\u2713 accepted" }; }
    if (mark.action === "reject") { return { cls: "review-reject", text: "\u2717 rejected" }; }
    var cand = (d.candidates || []).filter(function (c) { return c.iri === mark.target; })[0];
    return { cls: "review-pick", text: "\u2192 " + (cand && cand.label ? cand.label : localName(mark.target)) };
  }

  /* ---------- table ---------- */

  var COLUMNS = [
    { key: "i", label: "#", num: true, value: function (d) { return d.i; } },
    { key: "source", label: "Source", value: function (d) { return (d.source_label || d.source).toLowerCase(); } },
    { key: "decision", label: "Decision", value: function (d) { return d.decision; } },
    { key: "target", label: "Target", value: function (d) { return (d.target_label || "").toLowerCase(); } },
    { key: "confidence", label: "Confidence", num: true, value: function (d) { return d.confidence; } },
    { key: "top_score", label: "Top score", num: true, value: function (d) { return d.top_score; } },
    { key: "agreement", label: "Votes", num: true, value: function (d) { return d.agreement; } },
    { key: "flags", label: "Flags", value: function (d) { return flags(d).join(" "); } },
    { key: "gold", label: "Gold", gold: true, value: function (d) { return d.gold || ""; } },
    { key: "review", label: "Review", value: function (d) { var r = reviewText(d); return r ? r.text : ""; } }
  ].filter(function (c) { return !c.gold || DATA.gold; });

  function flags(d) {
    var out = [d.origin];
    if (d.early_stopped) { out.push("early-stop"); }
    if (d.kept) { out.push("kept"); }
    if (d.conflict_with) { out.push("lost-conflict"); }
    if (d.explanation && !d.human) { out.push("explained"); }
    return out;
  }

  function haystack(d) {
    if (d._hay === undefined) {
      var parts = [d.source, d.source_label, d.target || "", d.target_label, d.decision, d.explanation || ""];
      (d.source_attributes || []).forEach(function (a) { parts.push(a[1]); });
      (d.candidates || []).forEach(function (c) { parts.push(c.iri, c.label); });
      Object.defineProperty(d, "_hay", { value: parts.join("\n").toLowerCase(), enumerable: false });
    }
    return d._hay;
  }

  function passes(d) {
    var kind = state.kind;
    if (kind === "match" || kind === "none" || kind === "uncertain") { if (d.decision !== kind) { return false; } }
    else if (kind === "judged") { if (!d.rounds.length) { return false; } }
    else if (kind === "disagree") { if (!(d.tally.length > 1)) { return false; } }
    else if (kind === "human") { if (!d.human) { return false; } }
    else if (kind === "reviewed") { if (!state.marks.has(d.source)) { return false; } }
    else if (kind === "unreviewed") { if (state.marks.has(d.source)) { return false; } }
    else if (kind === "wrong") { if (d.gold !== "wrong" && d.gold !== "missed") { return false; } }
    if (!state.query) { return true; }
    var hay = haystack(d);
    return state.query.split(/\s+/).every(function (token) { return !token || hay.indexOf(token) >= 0; });
  }

  function compare(a, b) {
    var column = COLUMNS.filter(function (c) { return c.key === state.sortKey; })[0] || COLUMNS[0];
    var x = column.value(a), y = column.value(b);
    var missingX = x === null || x === undefined, missingY = y === null || y === undefined;
    if (missingX || missingY) {
      if (missingX && missingY) { return a.i - b.i; }
      return missingX ? 1 : -1;
    }
    if (x < y) { return -state.sortDir; }
    if (x > y) { return state.sortDir; }
    return a.i - b.i;
  }

  function renderHead() {
    var row = document.getElementById("head-row");
    row.replaceChildren();
    COLUMNS.forEach(function (column) {
      var sorted = state.sortKey === column.key;
      var th = h("th", {
        scope: "col",
        "data-key": column.key,
        "aria-sort": sorted ? (state.sortDir > 0 ? "ascending" : "descending") : "none"
      }, [h("button", {
        type: "button",
        text: column.label,
        title: "Sort by " + column.label.toLowerCase(),
        onclick: function () {
          if (sorted) { state.sortDir = -state.sortDir; }
          else { state.sortKey = column.key; state.sortDir = column.num && column.key !== "i" ? -1 : 1; }
          renderHead();
          render();
        }
      })]);
      row.appendChild(th);
    });
  }

  var ORIGIN_NAMES = { judged: "the LLM judge", gated: "retrieval (gated, not asked)", human: "a person (correction)", retrieval: "retrieval alone" };

  function badge(kind) {
    return h("span", { "class": "badge kind-" + kind, text: kind });
  }

  function goldCell(d) {
    var names = { "correct": "\u2713 correct", "wrong": "\u2717 wrong", "missed": "\u2717 missed", "correct-none": "\u2713 no match" };
    return d.gold ? h("span", { "class": "gold-" + d.gold, text: names[d.gold] || d.gold }) : "\u2013";
  }

  function tallyText(d) {
    if (!d.rounds.length) { return "\u2013"; }
    var best = d.tally.length ? d.tally[0][1] : 0;
    return best + "/" + d.rounds_asked;
  }

  function rowFor(d) {
    var review = reviewText(d);
    var expanded = state.expanded.has(d.source);
    var cells = {
      i: h("td", { "class": "num", text: d.i + 1 }),
      source: h("td", null, [h("div", { text: d.source_label }), h("div", { "class": "iri", text: d.source })]),
      decision: h("td", null, badge(d.decision)),
      target: h("td", null, d.target ? [h("div", { text: d.target_label }), h("div", { "class": "iri", text: d.target })] : "\u2013"),
      confidence: h("td", { "class": "num", text: fmt(d.confidence) }),
      top_score: h("td", { "class": "num", text: fmt(d.top_score) }),
      agreement: h("td", { "class": "num", text: tallyText(d) }),
      flags: h("td", null, flags(d).map(function (f) { return h("span", { "class": "flag", text: f }); })),
      gold: h("td", null, goldCell(d)),
      review: h("td", { "class": "review-cell" }, review ? h("span", { "class": review.cls, text: review.text }) : "")
    };
    var tr = h("tr", {
      "class": "decision-row" + (expanded ? " expanded" : ""),
      "data-source": d.source,
      "data-index": d.i,
      tabindex: 0,
      "aria-expanded": expanded ? "true" : "false"
    });
    COLUMNS.forEach(function (column) { tr.appendChild(cells[column.key]); });
    function toggle() {
      if (state.expanded.has(d.source)) { state.expanded.delete(d.source); } else { state.expanded.add(d.source); }
      render();
    }
    tr.addEventListener("click", toggle);
    tr.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(); }
    });
    return tr;
  }

  function candidateLabel(d, iri) {
    if (iri === "none") { return "none of these"; }
    if (iri === null || iri === undefined || iri === "invalid") { return "invalid answer"; }
    var cand = (d.candidates || []).filter(function (c) { return c.iri === iri; })[0];
    return cand && cand.label ? cand.label : localName(iri);
  }

  function detailFor(d) {
    var mark = state.marks.get(d.source);
    var left = h("div", null, [
      h("h3", { text: "Source entity" }),
      h("div", null, h("strong", { text: d.source_label })),
      h("div", { "class": "iri", text: d.source })
    ]);
    if (d.source_attributes.length) {
      var attrs = h("table", { "class": "attributes" }, h("tbody", null, d.source_attributes.map(function (a) {
        return h("tr", null, [h("th", { title: a[0], text: localName(a[0]) }), h("td", { text: a[1] })]);
      })));
      left.appendChild(attrs);
    } else {
      left.appendChild(h("p", { "class": "note", text: "No attributes were selected for this entity." }));
    }
    left.appendChild(h("h3", { text: "Final vote" }));
    var final = h("div", { "class": "final" }, [
      badge(d.decision), " ",
      d.target ? h("span", { text: d.target_label + " " }) : null,
      d.target ? h("span", { "class": "iri", text: d.target }) : null,
      h("div", { text: "confidence " + fmt(d.confidence) + " \u00b7 decided by " + (ORIGIN_NAMES[d.origin] || d.origin) + (d.early_stopped ? " \u00b7 stopped early" : "") + (d.kept ? " \u00b7 kept from the earlier run, not asked again" : "") })
    ]);
    if (d.tally.length) {
      final.appendChild(h("div", { text: "votes: " + d.tally.map(function (t) { return candidateLabel(d, t[0]) + " \u00d7" + t[1]; }).join(", ") }));
    }
    if (d.explanation) {
      final.appendChild(h("div", { "class": "explanation", text: (d.human ? "reviewer note: " : "judge's reason: ") + d.explanation }));
    }
    if (d.conflict_with) {
      final.appendChild(h("div", { text: "lost its target to " + d.conflict_with + " (no link)" }));
    }
    if (d.link && d.link !== d.target) {
      final.appendChild(h("div", { text: "linked in the output to " + candidateLabel(d, d.link) + " (" + d.link + ")" }));
    }
    if (d.gold_targets) {
      final.appendChild(h("div", null, ["gold: ", goldCell(d), d.gold_targets.length ? " \u2014 " + d.gold_targets.map(function (g) { return candidateLabel(d, g); }).join(", ") : " \u2014 no gold match"]));
    }
    left.appendChild(final);

    var right = h("div");
    right.appendChild(h("h3", { text: "Candidates (margin " + fmt(d.margin) + ", mutual nearest neighbour: " + (d.mutual ? "yes" : "no") + ")" }));
    var votesFor = new Map(d.tally.map(function (t) { return [t[0], t[1]]; }));
    var goldSet = new Set(d.gold_targets || []);
    var head = ["Rank", "Score", "Candidate", "Votes"];
    if (DATA.gold) { head.push("Gold"); }
    head.push("");
    var rows = d.candidates.map(function (c) {
      var picked = mark && mark.action === "pick" && mark.target === c.iri;
      var cells = [
        h("td", { "class": "num", text: c.rank }),
        h("td", { "class": "num", text: fmt(c.score, 4) }),
        h("td", null, [h("div", { text: c.label || localName(c.iri) }), h("div", { "class": "iri", text: c.iri })]),
        h("td", { "class": "num", text: votesFor.get(c.iri) || "" })
      ];
      if (DATA.gold) { cells.push(h("td", { text: goldSet.has(c.iri) ? "\u2713" : "" })); }
      cells.push(h("td", null, h("button", {
        type: "button", "class": "small secondary pick" + (picked ? " active" : ""), "data-iri": c.iri,
        text: picked ? "picked" : "Pick",
        title: "Mark this candidate as the match of the source",
        onclick: function (event) { event.stopPropagation(); setMark(d, picked ? null : "pick", c.iri); }
      })));
      return h("tr", { "class": (c.iri === d.target ? "chosen" : "") + (picked ? " picked" : ""), "data-iri": c.iri }, cells);
    });
    right.appendChild(h("table", { "class": "candidates" }, [
      h("thead", null, h("tr", null, head.map(function (t) { return h("th", { text: t }); }))),
      h("tbody", null, rows.length ? rows : h("tr", null, h("td", { colspan: head.length, text: "No candidates were retrieved." })))
    ]));

    if (d.rounds.length) {
      right.appendChild(h("h3", { text: "Rounds" }));
      var roundNumber = 0;
      right.appendChild(h("ol", { "class": "rounds" }, d.rounds.map(function (r) {
        if (!r.step) { roundNumber += 1; }
        var letters;
        if (r.first) {  // a pairwise round: one candidate, asked "same or not?", one record shown first
          letters = [candidateLabel(d, r.order[0]) + (r.first === "source" ? " (the source record shown first)" : " (the candidate shown first)")];
        } else {
          letters = r.order.map(function (iri, k) { return String.fromCharCode(65 + k) + ": " + candidateLabel(d, iri); });
          letters.push(String.fromCharCode(65 + r.order.length) + ": none of these");
        }
        var answer = "answer " + JSON.stringify(r.raw === null || r.raw === undefined ? "" : r.raw) + " \u2192 " + candidateLabel(d, r.target);
        var extra = [];
        if (r.p !== null && r.p !== undefined) { extra.push("p=" + fmt(r.p)); }
        if (r.cached) { extra.push("cached"); }
        if (r.error) { extra.push("error: " + r.error); }
        var shown = r.step ? "round " + roundNumber + ", then (step " + r.step + ") shown " : "round " + roundNumber + ": shown ";
        return h("li", { "data-round": roundNumber, "data-step": r.step }, [
          h("div", { "class": "order", text: shown + letters.join(" \u00b7 ") }),
          h("div", { text: answer + (extra.length ? " (" + extra.join(", ") + ")" : "") })
        ]);
      })));
      if (d.option_votes.length) {
        right.appendChild(h("h3", { text: "Judged set: each option picked in a strict majority of rounds is accepted" }));
        right.appendChild(h("ul", { "class": "option-votes" }, d.option_votes.map(function (v) {
          return h("li", { "class": v.accepted ? "accepted" : "", text: candidateLabel(d, v.iri) + ": picked in " + v.picked + " of " + v.rounds + " rounds, " + (v.accepted ? "accepted" : "not accepted") });
        })));
      }
    } else if (!d.human) {
      right.appendChild(h("p", { "class": "note", text: d.gated ? "Gated: retrieval was clear enough, the judge was not asked." : "The judge was not asked." }));
    }

    var status = reviewText(d);
    var note = h("input", {
      type: "text", "class": "note-input", placeholder: "note (optional, kept in the corrections file)", value: mark ? mark.note || "" : "",
      maxlength: 200,
      onclick: function (event) { event.stopPropagation(); },
      onchange: function (event) {
        var current = state.marks.get(d.source);
        if (current) { current.note = event.target.value; saveMarks(); }
      }
    });
    note.disabled = !mark;
    right.appendChild(h("div", { "class": "review-box" }, [
      h("strong", { text: "Review:" }),
      h("button", { type: "button", "class": "small accept" + (mark && mark.action === "accept" ? " active" : ""),
        text: d.target ? "Accept link" : "Accept no link",
        title: d.target ? "The target is right" : "Right: this source has no match",
        onclick: function (event) { event.stopPropagation(); setMark(d, "accept", d.target || null); } }),
      h("button", { type: "button", "class": "small reject" + (mark && mark.action === "reject" ? " active" : ""),
        text: "Reject", title: "This source has no match: no link",
        onclick: function (event) { event.stopPropagation(); setMark(d, "reject", d.target || null); } }),
      h("button", { type: "button", "class": "small secondary clear", text: "Clear", disabled: !mark,
        onclick: function (event) { event.stopPropagation(); setMark(d, null); } }),
      note,
      status ? h("span", { "class": status.cls + " review-status", text: status.text }) : h("span", { "class": "note review-status", text: "not reviewed" })
    ]));

    var td = h("td", { colspan: COLUMNS.length }, h("div", { "class": "detail" }, [left, right]));
    return h("tr", { "class": "detail-row", "data-source": d.source }, td);
  }

  function render() {
    var matching = DECISIONS.filter(passes).sort(compare);
    var body = document.getElementById("rows");
    var active = document.activeElement;
    var focused = active && active.classList && active.classList.contains("decision-row") ? active.getAttribute("data-source") : null;
    var fragment = document.createDocumentFragment();
    matching.slice(0, state.shown).forEach(function (d) {
      fragment.appendChild(rowFor(d));
      if (state.expanded.has(d.source)) { fragment.appendChild(detailFor(d)); }
    });
    body.replaceChildren(fragment);
    if (focused !== null) {
      Array.prototype.some.call(body.querySelectorAll("tr.decision-row"), function (row) {
        if (row.getAttribute("data-source") !== focused) { return false; }
        row.focus({ preventScroll: true });
        return true;
      });
    }
    var shown = Math.min(state.shown, matching.length);
    document.getElementById("row-count").textContent =
      matching.length === DECISIONS.length
        ? "showing " + shown + " of " + DECISIONS.length + " decisions"
        : matching.length + " of " + DECISIONS.length + " decisions match" + (shown < matching.length ? " (showing " + shown + ")" : "");
    var more = document.getElementById("more");
    more.hidden = shown >= matching.length;
    more.textContent = "Show " + Math.min(PAGE, matching.length - shown) + " more";
  }

  function bindToolbar() {
    var search = document.getElementById("search");
    search.addEventListener("input", function () {
      state.query = search.value.trim().toLowerCase();
      state.shown = PAGE;
      render();
    });
    var kind = document.getElementById("kind-filter");
    if (!DATA.gold) {
      Array.prototype.forEach.call(kind.querySelectorAll("option[data-gold]"), function (o) { o.remove(); });
    }
    kind.addEventListener("change", function () { state.kind = kind.value; state.shown = PAGE; render(); });
    document.getElementById("more").addEventListener("click", function () { state.shown += PAGE; render(); });
    document.getElementById("download").addEventListener("click", download);
    document.getElementById("clear-corrections").addEventListener("click", function () {
      if (!window.confirm("Clear every mark of this report?")) { return; }
      state.marks.clear();
      saveMarks();
      render();
    });
  }

  renderHeader();
  renderSummary();
  renderChanges();
  renderCharts();
  loadMarks();
  bindToolbar();
  renderHead();
  updateToolbar();
  render();
  document.documentElement.setAttribute("data-ready", "true");
})();
