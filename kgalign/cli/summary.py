"""The summary block that ends ``kgalign run``, ``rerun`` and ``dedup``: what went in, what
was decided, the cardinality, time and memory, where the outputs are, what to try next.

The block is for a person; the result lines after it (``N links from ...`` and, with
``--gold``, the metrics) keep their form for scripts, and are all ``-q`` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kgalign.runtime.stages import StageTimer


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _memory(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _classes(result: Any) -> str:
    classes = result.prepared.classes
    if classes is None:
        return ""
    pairs = len(classes.correspondences)
    return f", {_plural(pairs, 'class pair')} aligned" if pairs else ""


def _how(result: Any, sources: int) -> list[str]:
    """How the decisions were made, each counted once: by a reviewer, kept from an earlier
    run, clear without the judge, by the judge, by retrieval's scores (past the judge's
    time budget, after the judge said no in a closed world, or without a judge)."""
    ways: dict[str, int] = {}
    for d in result.decisions:
        way = (
            "human" if d.human else "kept" if d.kept else "gated" if d.gated else "closed" if d.to_retrieval
            else "judge" if d.rounds else "budget" if d.over_budget else "retrieval"
        )  # fmt: skip
        ways[way] = ways.get(way, 0) + 1
    how = [f"{ways.get('gated', 0):,} clear without the judge"]
    if result.config.judge != "none" or ways.get("judge"):
        how.append(f"{ways.get('judge', 0):,} by the judge")
    if ways.get("human"):
        how.append(f"{ways['human']:,} by a reviewer")
    if ways.get("kept"):
        how.append(f"{ways['kept']:,} kept from the earlier run")
    rest = ways.get("retrieval", 0) + ways.get("budget", 0) + ways.get("closed", 0)
    if rest:
        why = [f"{ways['budget']:,} of them past the judge's time budget"] if ways.get("budget") else []
        why += [f"{ways['closed']:,} the judge said no to, in a closed world"] if ways.get("closed") else []
        check = getattr(result, "judge_check", None)
        if check and not check["passed"] and ways.get("retrieval"):
            why.append("the judge failed its check on this data")
        how.append(f"{rest:,} by retrieval's scores" + (f" ({'; '.join(why)})" if why else ""))
    return how


def _judge_line(result: Any) -> str | None:
    counts = result.counts
    if result.config.judge == "none":
        return None
    seconds = result.timer.stages.get("judge", {}).get("seconds", 0.0)
    line = f"  judge        {result.judge_id or result.config.judge}: {_plural(counts.get('llm_questions', 0), 'question')} asked"
    if counts.get("cache_hits"):
        line += f", {counts['cache_hits']:,} answered from the cache"
    return line + f", {_seconds(seconds)}"


def _adapt_line(adaptation: dict[str, Any]) -> str:
    """``--adapt``: what the judge was trained on, how long, and what it gained on the held-out sources."""
    from kgalign.finetune.adapt import held_out

    done = "taken from an earlier start" if adaptation["reused"] else f"{adaptation['steps']} steps, {_seconds(adaptation['seconds'])}"
    if adaptation.get("method") == "full":
        done += ", every weight"
    kept = "" if adaptation["best_step"] else " (the judge as it was kept)"
    return (
        f"  adapted      on {_plural(adaptation['sources'], 'confident source')} ({adaptation['train_questions']:,} questions, {done}); "
        f"held-out {held_out(adaptation['accuracy_before'], adaptation['accuracy_after'], adaptation.get('f1_before'), adaptation.get('f1_after'))}{kept}"
    )


def _check_line(check: dict[str, Any]) -> str:
    """The judge check: how well the judge ranked the run's confident pairs, and what followed."""
    auc = "no ranking" if check["auc"] is None else f"ROC AUC {check['auc']:.3f}"
    bar = "its training's" if check["required_from"] == "training" else "the one given"
    verdict = "trusted" if check["passed"] else "not trusted: retrieval decided instead"
    return (
        f"  checked      the judge on {_plural(check['sources'], 'confident source')} ({check['questions']:,} questions, {_seconds(check['seconds'])}): "
        f"{auc} against {bar} {check['required']:.3f}, {verdict}"
    )


def _cardinality(result: Any) -> str:
    info = result.cardinality_info()
    sizes = [len(c) for c in result.fusion.clusters]
    largest = f", largest cluster {max(sizes)}" if sizes else ""
    if info.get("detected"):
        return f"  cardinality  {info.get('choice', info['resolve'])} (detected){largest}"
    return f"  cardinality  {info['resolve']} (given){largest}"


def run_block(result: Any, outdir: Path, command: str = "run") -> list[str]:
    """The summary block of a finished run (its result lines excluded)."""
    counts = result.counts
    lines = [
        f"kgalign {command}: {_plural(counts['entities_left'], 'entity', 'entities')} left, {_plural(counts['entities_right'], 'entity', 'entities')} right{_classes(result)}"
    ]
    matched, uncertain, unmatched = counts.get("matches", 0), counts.get("uncertain", 0), counts.get("none", 0)
    sources = matched + uncertain + unmatched
    lines.append(f"  decisions    {_plural(sources, 'source')}: {matched:,} matched, {uncertain:,} uncertain, {unmatched:,} without a match")
    lines.append("               " + ", ".join(_how(result, sources)))
    judge = _judge_line(result)
    if judge:
        lines.append(judge)
    if getattr(result, "adaptation", None):
        lines.append(_adapt_line(result.adaptation))
    if getattr(result, "judge_check", None):
        lines.append(_check_line(result.judge_check))
    below = sum(c.get("unlinked", 0) for c in (result.guard.get("cut") or []))
    links = f"  links        {counts['links']:,}"
    if below:
        links += f" ({below:,} below the no-counterpart cut not made)"
    lines.append(links)
    lines.append(_cardinality(result))
    if result.since:
        from kgalign.incremental.since import summary_line

        lines.append("  " + summary_line(result.since, counts))
    if result.warnings:
        lines.append(f"  warnings     {len(result.warnings)} (above, and in run.json)")
    return lines + _closing(result, outdir)


def _closing(result: Any, outdir: Path) -> list[str]:
    return [
        f"  time         {_seconds(result.timer.total_seconds)}, peak memory {_memory(StageTimer.process_peak_mb())}",
        f"  outputs      {outdir}/ (links.ttl, fused.ttl, votes.jsonl, run.json{', metrics.json' if result.metrics is not None else ''})",
        f"  next         kgalign inspect {outdir / 'votes.jsonl'}   |   kgalign report {outdir}",
    ]


def dedup_block(result: Any, outdir: Path) -> list[str]:
    """The summary block of ``kgalign dedup``."""
    counts = result.counts
    clusters = result.clusters or {}
    lines = [f"kgalign dedup: {_plural(counts['entities_left'], 'entity', 'entities')}"]
    lines.append(
        f"  duplicates   {_plural(counts['links'], 'pair')} in {_plural(counts['clusters'], 'cluster')}"
        f" ({clusters.get('split', 0):,} split at a weak link, {len(clusters.get('flagged', [])):,} flagged)"
    )
    judge = _judge_line(result)
    if judge:
        lines.append(judge)
    if result.warnings:
        lines.append(f"  warnings     {len(result.warnings)} (above, and in run.json)")
    return lines + _closing(result, outdir)


def pairs_block(file: Path, metrics: dict[str, Any], outdir: Path | None) -> list[str]:
    """The summary block of ``kgalign pairs`` (its two result lines excluded)."""
    lines = [f"kgalign pairs: {_plural(metrics['pairs'], 'pair')} of {file} in {_plural(metrics['questions'], 'question')} (one per left record)"]
    if metrics["judge"] != "none":
        lines.append(
            f"  judge        {metrics['judge']}: {metrics['asked']:,} asked ({metrics['llm_questions']:,} LLM questions), {metrics['gated']:,} clear without it"
        )
    checked = metrics.get("judge_check")
    if checked:
        verdict = "trusted" if checked["trusted"] else "not trusted: every question decided as with --judge none"
        lines.append(
            f"  check        on {metrics['valid']}: the judge's best F1 {checked['judge_valid_f1']:.4f}, retrieval's {checked['retrieval_valid_f1']:.4f}: {verdict}"
        )
    lines.append(f"  time         {_seconds(metrics['seconds'])}, peak memory {_memory(StageTimer.process_peak_mb())}")
    if outdir is not None:
        lines.append(f"  outputs      {outdir}/ (predictions.tsv, votes.jsonl, metrics.json)")
        lines.append(f"  next         kgalign inspect {outdir / 'votes.jsonl'}")
    return lines
