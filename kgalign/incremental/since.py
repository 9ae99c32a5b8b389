"""A run against an earlier one (``--since OLD``): what it reuses, and what changed.

The new run is a whole run on the new inputs, so its links are those of a full run:
global statistics (TF-IDF document frequencies, attribute ranking) are recomputed, not
patched. What makes it cheap is what it reuses:

- the judge's answers: OLD's answer cache is copied into the new folder before the judge
  runs, so a question asked before (same source, same candidates, same texts: the same
  prompt) is answered from it; only new or affected sources reach the LLM;
- the sentence vectors, kept per text in the shared vector cache
  (:mod:`kgalign.retrieval.vector_cache`), so only new or changed texts are embedded;
- endpoint copies (OUTDIR/sources), carried over unless ``--refresh``.

With ``keep_earlier`` it also keeps OLD's decisions of the sources whose questions only
the updated statistics changed, instead of asking again (:mod:`kgalign.incremental.keep`).

Then it compares with OLD: entities added, removed and changed on each side (by content
hash, OLD/entities.json.gz), links added, removed and changed, clusters merged and split,
and the sources the judge was asked about, each with its reason (:data:`ASKED_REASONS`),
into ``changes.jsonl``, a summary in run.json (``since``), one line on stderr and a
section of the report.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgalign.errors import InputError, KgalignError
from kgalign.incremental.state import STATE_FILE, read_state
from kgalign.outputs import CACHE_FILE

if TYPE_CHECKING:
    from kgalign.config import AlignConfig
    from kgalign.model import Decision
    from kgalign.result import AlignmentResult

log = logging.getLogger(__name__)

SINCE_FILE = "changes.jsonl"

#: Why a run asked the judge about a source again rather than reusing the earlier run's
#: answers, the first that applies (changes.jsonl ``judge_asked``, run.json
#: ``since.asked``). The last two are those no change of the source or of an option
#: explains: both are unchanged, but the updated statistics showed other unchanged
#: candidates, or showed the same ones in another order or described otherwise (a
#: related entity added or removed, whose name the prompt shows; another attribute order).
ASKED_REASONS = (
    "source added",
    "source changed",
    "candidate added or changed",
    "not asked before",
    "earlier candidate removed or changed",
    "other candidates",
    "same candidates shown otherwise",
    "judge or its settings changed",
    "no earlier answers",
)
#: The reasons no change of the source or of an option explains: the statistics moved its question.
STATISTICS_REASONS = ("other candidates", "same candidates shown otherwise")
#: The reason given when OLD's decision log cannot be read (the run goes on; a warning says why).
UNKNOWN_BEFORE = "earlier decisions unreadable"


@dataclass
class OldRun:
    """What a later run needs of an earlier one."""

    name: str
    left: dict[str, str]
    right: dict[str, str]
    links: set[tuple[str, str]]
    folder: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: The options the earlier run's judge was shown, per source it asked about; read
    #: from OLD/votes.jsonl on first use (:meth:`asked_before`).
    shown: dict[str, set[str]] | None = None
    shown_unreadable: bool = False
    #: The decisions the earlier run's judge made, per source; read from OLD/votes.jsonl
    #: on first use (:meth:`judged_before`).
    judged: dict[str, Decision] | None = None

    @property
    def selection(self) -> dict[str, dict[str, list[str]]] | None:
        """The predicates the earlier run showed, per side, in order (run.json ``selection``)."""
        selection = self.info.get("selection")
        return selection if isinstance(selection, dict) else None

    @classmethod
    def from_result(cls, result: AlignmentResult) -> OldRun:
        left, right = result.entity_hashes()
        selection = {side: {"attributes": sel.attributes, "relations": sel.relations} for side, sel in result.prepared.selections.items()}
        shown = {d.source: d.shown for d in result.decisions if d.rounds}
        judged = {d.source: d for d in result.decisions if d.by_judge}
        info = {"selection": selection, "judge": result.judge_id, "config": result.config.to_dict(), "effective": result.config.diff(result.effective)}
        return cls(
            name="(previous result)",
            left=left,
            right=right,
            links={(link.left, link.right) for link in result.links},
            info=info,
            shown=shown,
            judged=judged,
        )

    def judged_before(self) -> dict[str, Decision]:
        """The decisions the earlier run's judge made (not the gate, retrieval or a
        person), per source; read from OLD/votes.jsonl once. A log that cannot be read
        stops the run in one line naming the file and line. The same reading gives
        :meth:`asked_before` its options shown."""
        if self.judged is None:
            self.shown, self.judged = _read_votes(Path(self.folder or ".") / "votes.jsonl", decisions=True)
        return self.judged

    def asked_before(self) -> dict[str, set[str]] | None:
        """The options the earlier run's judge was shown, per source it asked about; None
        (and a warning) when OLD's decision log cannot be read."""
        if self.shown is None and self.folder is not None and not self.shown_unreadable:
            try:
                self.shown, _ = _read_votes(self.folder / "votes.jsonl", decisions=False)
            except (KgalignError, OSError, ValueError) as exc:
                log.warning("%s: the earlier decisions cannot be read (%s); why each source was asked again is given in part", self.name, exc)
                self.shown_unreadable = True
        return self.shown


def read_old(folder: str | Path) -> OldRun:
    """The earlier run in ``folder``: its entity hashes, links and run.json; one-line errors, nothing written."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KgalignError(f"{folder}: --since needs the output folder of an earlier `kgalign run`")
    from kgalign.replay import read_run_json

    info = read_run_json(folder, "--since needs the output folder of an earlier `kgalign run`")
    clusters = info.get("clusters")
    if isinstance(clusters, dict) and clusters.get("command") == "dedup":
        raise KgalignError(f"{folder}: the output of `kgalign dedup`, not of `kgalign run`")
    left, right = read_state(folder / STATE_FILE)
    return OldRun(name=str(folder), left=left, right=right, links=_read_links(folder / "links.ttl"), folder=folder, info=info)


def _read_links(path: Path) -> set[tuple[str, str]]:
    import pyoxigraph as ox

    try:
        with path.open("rb") as handle:
            return {(q.subject.value, q.object.value) for q in ox.parse(handle, format=ox.RdfFormat.TURTLE) if q.predicate.value.endswith("#sameAs")}
    except FileNotFoundError:
        raise KgalignError(f"{path}: missing; the earlier run's folder is incomplete") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise KgalignError(f"{path}: cannot read the earlier run's links ({exc})") from None


def _read_votes(path: Path, decisions: bool) -> tuple[dict[str, set[str]], dict[str, Decision]]:
    """In one reading of a votes.jsonl: per source the judge was asked about, the options
    it was shown; with ``decisions``, also the decisions its judge made (not the gate's
    or a person's; else none), a record that cannot be read back failing on its line."""
    from kgalign.review.votes import numbered_votes, record_decision

    shown: dict[str, set[str]] = {}
    judged: dict[str, Decision] = {}
    for number, record in numbered_votes(path):
        rounds = record.get("rounds")
        if not isinstance(rounds, list) or not rounds:
            continue
        shown[str(record.get("source"))] = {str(iri) for r in rounds if isinstance(r, dict) for iri in r.get("order") or ()}
        if decisions and not record.get("gated") and not record.get("human"):
            try:
                decision = record_decision(record)
            except ValueError as exc:
                raise InputError(f"{path}:{number}: not a decision record kgalign can keep ({exc})") from None
            judged[decision.source] = decision
    return shown, judged


def check_overlap(old: OldRun, left: Iterable[str], right: Iterable[str]) -> None:
    """A folder of a run on other data entirely is a mistake: say so rather than report everything as new."""
    if not (old.left.keys() & set(left)) and not (old.right.keys() & set(right)):
        raise KgalignError(f"{old.name}: no entity in common with these inputs on either side; is it the folder of a run on earlier versions of them?")


def reuse_answers(old: OldRun, cache_path: str | None) -> bool:
    """Copy OLD's judge answer cache to ``cache_path``, or add its answers to the cache
    already there (answers found in both are kept as they are); whether it did."""
    if old.folder is None or cache_path is None:
        return False
    source, target = old.folder / CACHE_FILE, Path(cache_path)
    if not source.is_file() or (target.exists() and source.resolve() == target.resolve()):
        return False
    import contextlib
    import sqlite3

    from kgalign.judging.cache import SCHEMA

    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        # SQLite's backup copies a consistent state even if OLD's write-ahead log holds the last answers.
        with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
        log.info("reusing %s's judge answers (%s)", old.name, source)
        return True
    with contextlib.closing(sqlite3.connect(target)) as dst:
        dst.execute(SCHEMA)
        dst.execute("ATTACH DATABASE ? AS earlier", (str(source),))
        added = dst.execute("INSERT OR IGNORE INTO answers SELECT * FROM earlier.answers").rowcount
        dst.commit()
        dst.execute("DETACH DATABASE earlier")
    log.info("reusing %s's judge answers: %d added to the answers already in %s", old.name, added, target)
    return True


def _diff(old: dict[str, str], new: dict[str, str]) -> dict[str, set[str]]:
    both = old.keys() & new.keys()
    return {
        "added": set(new) - set(old),
        "removed": set(old) - set(new),
        "changed": {iri for iri in both if old[iri] != new[iri]},
        "unchanged": {iri for iri in both if old[iri] == new[iri]},
    }


def _reason(left: str, rights: Sequence[str], entities: dict[str, dict[str, set[str]]]) -> str:
    """Why a link came, went or changed: the first of the source's and then its targets'
    (a changed link's new one, then its old one) additions, removals and changes."""
    for side, iri in [("left", left)] + [("right", right) for right in rights]:
        for kind in ("added", "removed", "changed"):
            if iri in entities[side][kind]:
                return f"{side} entity {kind}"
    return "re-checked: candidates or statistics changed"


def _clusters(pairs: Iterable[tuple[str, str]]) -> list[set[str]]:
    import networkx as nx

    graph = nx.Graph()
    graph.add_edges_from((("L", a), ("R", b)) for a, b in pairs)
    return [{f"{side}:{iri}" for side, iri in component} for component in nx.connected_components(graph)]


def compare(old: OldRun, result: AlignmentResult, kept: Mapping[str, str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The records of changes.jsonl and the ``since`` summary of run.json; ``kept``: the
    sources whose earlier decision the run kept, with the reason (:mod:`kgalign.incremental.keep`)."""
    left, right = result.entity_hashes()
    entities = {"left": _diff(old.left, left), "right": _diff(old.right, right)}
    records: list[dict[str, Any]] = []
    for side in ("left", "right"):
        for kind in ("added", "removed", "changed"):
            records += [{"change": f"entity_{kind}", "side": side, "iri": iri} for iri in sorted(entities[side][kind])]
    new_links = {(link.left, link.right) for link in result.links}
    old_by_left: dict[str, set[str]] = defaultdict(set)
    new_by_left: dict[str, set[str]] = defaultdict(set)
    for a, b in old.links:
        old_by_left[a].add(b)
    for a, b in new_links:
        new_by_left[a].add(b)
    counts: Counter[str] = Counter()
    for source in sorted(old_by_left.keys() | new_by_left.keys()):
        before, after = old_by_left.get(source, set()), new_by_left.get(source, set())
        gone, came = sorted(before - after), sorted(after - before)
        if len(gone) == 1 and len(came) == 1:
            records.append({"change": "link_changed", "left": source, "old_right": gone[0], "right": came[0], "reason": _reason(source, (came[0], gone[0]), entities)})
            counts["changed"] += 1
            continue
        for target in gone:
            records.append({"change": "link_removed", "left": source, "right": target, "reason": _reason(source, (target,), entities)})
            counts["removed"] += 1
        for target in came:
            records.append({"change": "link_added", "left": source, "right": target, "reason": _reason(source, (target,), entities)})
            counts["added"] += 1
    counts["kept"] = len(old.links & new_links)
    present = {f"L:{iri}" for iri in left} | {f"R:{iri}" for iri in right}
    merged, split = _cluster_changes(_clusters(old.links), _clusters(new_links), present)
    records += [{"change": "clusters_merged", "members": members, "from": parts} for members, parts in merged]
    records += [{"change": "cluster_split", "members": members, "into": parts} for members, parts in split]
    asked = why_asked(old, result.decisions, entities, _answers_unusable(old, result))
    records += [{"change": "judge_asked", "left": source, "reason": reason} for source, reason in asked]
    kept = kept or {}
    records += [{"change": "decision_kept", "left": source, "reason": kept[source]} for source in sorted(kept)]
    summary = {
        "old": old.name,
        "entities": {side: {kind: len(iris) for kind, iris in diff.items()} for side, diff in entities.items()},
        "links": {key: counts[key] for key in ("added", "removed", "changed", "kept")},
        "clusters": {"merged": len(merged), "split": len(split)},
        "asked": dict(Counter(reason for _, reason in asked).most_common()),
        "kept": dict(Counter(kept.values()).most_common()),
    }
    return records, summary


#: The settings that make a judge's answers: a run with other values keeps nothing.
JUDGE_FIELDS = ("judge", "model", "adapter")


def earlier_settings_differ(old: OldRun, effective: AlignConfig) -> str | None:
    """What differs between the earlier run and this one that makes its decisions another
    judge's (the judge, the vote's settings), or None."""
    differ = earlier_judge_differs(old, effective)
    if differ:
        return differ
    from kgalign.config import VoteConfig

    config, changed = old.info.get("config") or {}, old.info.get("effective") or {}
    # A setting the earlier run's kgalign did not have yet had its default there.
    vote = _compared({**asdict(VoteConfig()), **(config.get("vote") or {}), **(changed.get("vote") or {})})
    now = _compared(asdict(effective.vote))
    if vote != now:
        return "the vote's " + ", ".join(sorted(key for key in now if vote.get(key) != now[key]))
    return None


def _compared(vote: dict[str, Any]) -> dict[str, Any]:
    """A vote's settings as they decide answers: without the judge's time budget, and the
    pairwise threshold only where pairwise questions read it (unset counts as one half,
    as the vote reads it; a run before 2026-11-28 recorded 0.5 for every question)."""
    vote = dict(vote)
    vote.pop("budget", None)
    threshold = vote.pop("pair_threshold", None)
    if vote.get("question") == "pairwise":
        vote["pair_threshold"] = 0.5 if threshold is None else threshold
    return vote


def earlier_judge_differs(old: OldRun, effective: AlignConfig) -> str | None:
    """Which of the judge's settings (backend, model, adapter, llm_model) differ from the
    earlier run's, or None; its answers then answer none of this run's questions."""
    config, changed = old.info.get("config"), old.info.get("effective") or {}
    if not isinstance(config, dict):
        return "the earlier run's settings are unknown"
    for name in JUDGE_FIELDS:
        if changed.get(name, config.get(name)) != getattr(effective, name):
            return f"the judge's {name}"
    earlier_model = (changed.get("judge_options") or config.get("judge_options") or {}).get("llm_model")
    if earlier_model != effective.judge_options.get("llm_model"):
        return "the judge's llm_model"
    return None


def _answers_unusable(old: OldRun, result: AlignmentResult) -> str | None:
    """Why none of OLD's answers could answer this run's questions, or None: OLD's folder
    keeps no answer cache (a run with --no-cache), or its judge is another (the backend, its
    model or server), so the questions are keyed otherwise."""
    if old.folder is not None and not (old.folder / CACHE_FILE).is_file():
        return "no earlier answers"
    # A judge never loaded (every source gated) is named by its options, not its model.
    before, now = old.info.get("judge"), result.judge_id or "none"
    loaded = isinstance(before, str) and "(not loaded" not in before and "(not loaded" not in now
    differ = earlier_judge_differs(old, result.effective) or (f"the judge, {before}," if loaded and before != now else None)
    if differ:
        log.warning("%s's answers were asked of another judge (%s differs): none answers this run's questions", old.name, differ)
        return "judge or its settings changed"
    return None


def why_asked(
    old: OldRun, decisions: Iterable[Decision], entities: dict[str, dict[str, set[str]]], unusable: str | None = None
) -> list[tuple[str, str]]:
    """Each source the judge was asked about in this run (a round not answered from the
    cache), with the first of :data:`ASKED_REASONS` that applies, by source. ``unusable``:
    why OLD's answers could answer none of this run's questions (:func:`_answers_unusable`),
    given for the sources only that would otherwise have been shown the same candidates."""
    asked = sorted((d for d in decisions if not d.kept and any(not r.cached for r in d.rounds)), key=lambda d: d.source)
    if not asked:
        return []
    left, right = entities["left"], entities["right"]
    fresh, gone = right["added"] | right["changed"], right["removed"] | right["changed"]
    before = old.asked_before()
    reasons = []
    for decision in asked:
        source, shown = decision.source, decision.shown
        if source in left["added"]:
            reason = "source added"
        elif source in left["changed"]:
            reason = "source changed"
        elif shown & fresh:
            reason = "candidate added or changed"
        elif before is None:
            reason = UNKNOWN_BEFORE
        elif source not in before:
            reason = "not asked before"
        elif before[source] & gone:
            reason = "earlier candidate removed or changed"
        elif shown != before[source]:
            reason = "other candidates"
        else:
            reason = unusable or "same candidates shown otherwise"
        reasons.append((source, reason))
    return reasons


def _cluster_changes(old: list[set[str]], new: list[set[str]], present: set[str]) -> tuple[list[tuple[list[str], int]], list[tuple[list[str], int]]]:
    """New clusters made of members of several old ones (merged), and old clusters whose
    members still ``present`` went to several new ones or were left alone (split)."""
    old_of = {member: i for i, cluster in enumerate(old) for member in cluster}
    new_of = {member: i for i, cluster in enumerate(new) for member in cluster}
    merged = []
    for cluster in new:
        parts = {old_of[m] for m in cluster if m in old_of}
        if len(parts) > 1:
            merged.append((sorted(cluster), len(parts)))
    split = []
    for cluster in old:
        into: set[object] = {new_of[m] if m in new_of else m for m in cluster if m in present}
        if len(into) > 1:
            split.append((sorted(cluster), len(into)))
    return merged, split


def summary_line(summary: dict[str, Any], counts: dict[str, int]) -> str:
    entities = summary["entities"]
    links = summary["links"]

    def side(name: str) -> str:
        e = entities[name]
        return f"{name} +{e['added']} -{e['removed']} ~{e['changed']}"

    asked = summary.get("asked") or {}
    why = f" about {sum(asked.values())} sources ({', '.join(f'{n} {reason}' for reason, n in asked.items())})" if asked else ""
    kept = summary.get("kept") or {}
    why += f", {sum(kept.values())} earlier decisions kept" if kept else ""
    return (
        f"since {summary['old']}: entities {side('left')}, {side('right')}; links +{links['added']} -{links['removed']} ~{links['changed']} "
        f"({links['kept']} kept); clusters merged {summary['clusters']['merged']}, split {summary['clusters']['split']}; "
        f"{counts.get('llm_questions', 0)} LLM questions{why}, {counts.get('cache_hits', 0)} answers reused; "
        f"{counts.get('vectors_computed', 0)} texts embedded, {counts.get('vectors_read', 0)} vectors reused"
    )


def write_changes(path: Path, records: list[dict[str, Any]]) -> None:
    from kgalign.io.atomic import atomic_open

    with atomic_open(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
