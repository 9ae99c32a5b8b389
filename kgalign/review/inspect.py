"""Plain-text views of the decision log for `kgalign inspect`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kgalign.judging.prompt import option_letter


def render_summary(summary: dict[str, Any]) -> str:
    lines = [f"{summary['entities']} source entities"]
    lines.append("decisions: " + ", ".join(f"{kind} {n}" for kind, n in summary["decisions"].items()))
    lines.append(
        f"gated (no LLM) {summary['gated']}, judged {summary['judged']}, human {summary['human']}, "
        f"early-stopped {summary['early_stopped']}, conflicts lost {summary['conflicts']}"
    )
    lines.append(f"rounds asked {summary['rounds']}, invalid votes {summary['invalid_votes']}, 'none of these' votes {summary['none_votes']}")
    if summary["mean_round_agreement"] is not None:
        lines.append(f"mean agreement between rounds: {summary['mean_round_agreement']:.3f}")
    run = summary.get("run") or {}
    card = run.get("cardinality")
    if card:
        if card.get("detected"):
            lines.append(
                f"cardinality: {card['choice']} (detected; {card['left_share']:.0%} of left and {card['right_share']:.0%} of right entities "
                f"with several counterparts; resolve {card['resolve']})"
            )
            judged = card.get("judge")
            if judged:
                lines.append(f"  {_judge_line(judged, card)}")
        elif card.get("resolve") == "dedup":
            lines.append("cardinality: duplicates within one graph (kgalign dedup)")
        else:
            lines.append(f"cardinality: resolve {card.get('resolve')} (given)")
    classes = run.get("classes") or {}
    if classes.get("correspondences"):
        blocks = classes.get("blocks") or []
        lines.append(f"classes: {len(classes['correspondences'])} correspondences, {len(blocks)} blocks of entities aligned")
        left_out = classes.get("left_out") or {}
        if any(left_out.values()):
            lines.append(f"  not aligned (their classes correspond to nothing): {left_out.get('left', 0)} left, {left_out.get('right', 0)} right entities")
    guard = run.get("guard") or {}
    for cut in guard.get("cut") or []:
        lines.append(
            f"no-counterpart cut {cut['cut']:.3f}: {cut.get('unlinked', 0)} links below it not made, of {cut['sources']} sources "
            f"(an estimated {cut['no_counterpart']:.0f} without a counterpart, from {cut['null_size']} clear matches' runner-ups; mutual best pairs kept)"
        )
    bounded = guard.get("clusters") or {}
    if bounded.get("clusters_cut"):
        lines.append(f"{bounded['clusters_cut']} clusters above {bounded['bound']} entities cut back to one-to-one ({bounded['links_before']} -> {bounded['links_after']} links)")
    for warning in run.get("warnings") or []:
        lines.append(f"warning: {warning}")
    clusters = run.get("clusters")
    if clusters and clusters.get("sizes"):
        sizes = ", ".join(f"{n} of size {size}" for size, n in clusters["sizes"].items())
        line = f"clusters: {sum(clusters['sizes'].values())} ({sizes})"
        if "split" in clusters:
            line += f"; {clusters['split']} split at a weak link, {len(clusters.get('flagged', []))} flagged"
        lines.append(line)
    if summary.get("pairwise_rounds"):
        bias = summary.get("order_bias")
        said = f"{bias:+.3f}" if bias is not None else "not measured (no pair asked in both orders)"
        lines.append(f"pairwise rounds {summary['pairwise_rounds']}; order bias (mean p with the source first minus second): {said}")
    wins = summary["position_wins"]
    if wins:
        total = sum(wins.values())
        lines.append("position wins (position bias): " + ", ".join(f"{p} {n} ({n / total:.0%})" for p, n in wins.items()))
    return "\n".join(lines)


def render_list(rows: Sequence[dict[str, Any]], total: int) -> str:
    lines = [f"{total} decisions match (showing {len(rows)})"]
    for r in rows:
        votes = " ".join(_short(x["target"]) for x in r.get("rounds", []))
        lines.append(f"{r['decision']:9} {r['confidence']:.3f}  {r['source']}  -> {r.get('target') or '-'}  votes: {votes or '-'}")
    return "\n".join(lines)


def _short(target: str | None) -> str:
    if target is None:
        return "invalid"
    return target.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def render_decision(r: dict[str, Any]) -> str:
    lines = [f"source: {r['source']}  ({r.get('source_label') or ''})"]
    for key, value in r.get("source_attributes", []):
        lines.append(f"  {key}: {value}")
    lines.append(f"decision: {r['decision']}  target: {r.get('target') or '-'}  confidence: {r['confidence']:.3f}")
    flags = [name for name in ("gated", "early_stopped", "human", "kept", "over_budget", "to_retrieval") if r.get(name)]
    if flags:
        lines.append("flags: " + ", ".join(flags))
    if r.get("conflict_with"):
        lines.append(f"lost its target to: {r['conflict_with']}")
    lines.append(f"candidates (margin {r.get('margin', 0):.3f}, mutual NN: {r.get('mutual')}):")
    for c in r["candidates"]:
        lines.append(f"  {c['rank']:>2}. {c['score']:.4f}  {c['iri']}  {c.get('label', '')}")
    if any(round_.get("first") for round_ in r.get("rounds", [])):
        lines.extend(_pair_rounds(r["rounds"]))
    number = 0
    for round_ in [x for x in r.get("rounds", []) if not x.get("first")]:
        step = round_.get("step") or 0
        number += step == 0
        order = ", ".join(f"{option_letter(j)}={_short(iri)}" for j, iri in enumerate(round_["order"]))
        prob = f" p={2.718281828 ** round_['logprob']:.3f}" if round_.get("logprob") is not None else ""
        cached = " (cached)" if round_.get("cached") else ""
        label = f"round {number}" if step == 0 else f"  then {step}"
        lines.append(f"  {label}: [{order}] answer {round_['raw']!r} -> {_short(round_['target'])}{prob}{cached}")
    if r.get("option_votes"):
        lines.append("judged set (picked in rounds, accepted with a strict majority):")
        for vote in r["option_votes"]:
            mark = "accepted" if vote["accepted"] else "not accepted"
            lines.append(f"  {vote['iri']}: {vote['picked']}/{vote['rounds']} {mark} (confidence {vote['confidence']:.3f})")
    if r.get("explanation"):
        lines.append(f"{'reviewer note' if r.get('human') else 'explanation'}: {r['explanation']}")
    if r.get("prompt"):
        lines.append("prompt (round 1):")
        lines.extend("  | " + line for line in r["prompt"].splitlines())
    return "\n".join(lines)


def _pair_rounds(rounds: list[dict[str, Any]]) -> list[str]:
    """A pairwise vote's rounds, by candidate: each round's order and probability of yes, and the mean."""
    by_candidate: dict[str, list[dict[str, Any]]] = {}
    for round_ in rounds:
        if round_.get("first") and round_.get("order"):
            by_candidate.setdefault(round_["order"][0], []).append(round_)
    lines = ["pairwise votes (probability of 'same' per round; the mean decides):"]
    for iri, asked in by_candidate.items():
        shown = []
        for round_ in asked:
            first = "source first" if round_["first"] == "source" else "candidate first"
            p = round_.get("p_yes")
            shown.append(f"{first} {round_['raw']!r} p={p:.3f}" if p is not None else f"{first} invalid")
        ps = [x["p_yes"] for x in asked if x.get("p_yes") is not None]
        mean = f"mean {sum(ps) / len(ps):.3f}" if ps else "no valid round"
        lines.append(f"  {_short(iri)}: {mean}  ({'; '.join(shown)}{'; cached' if any(x.get('cached') for x in asked) else ''})")
    return lines


def _judge_line(judged: dict, card: dict) -> str:
    """The judge's part in the cardinality (run.json ``cardinality.judge``)."""
    parts = []
    for side in ("left", "right"):
        rate, share = judged.get(f"{side}_rate"), judged.get(f"{side}_judged_share")
        if rate is not None and share is not None:
            parts.append(
                f"{side}: {judged[f'{side}_confirmed']} of {judged[f'{side}_checked']} claims of several confirmed ({rate:.0%}), "
                f"share {card[f'{side}_share']:.0%} -> {share:.0%}"
            )
    said = "; ".join(parts) or "too few claims of several checked to measure"
    before = card.get("retrieval_choice")
    verdict = f"revised from {before} (retrieval) to {card['choice']}" if before and before != card["choice"] else "choice kept"
    return f"judge: {said}; {verdict}"
