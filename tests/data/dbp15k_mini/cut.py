"""Cut small, connected excerpts of DBP15K fr-en and SRPRS fr-en into tests/data/dbp15k_mini/.

Gold pairs are chosen greedily so that the excerpt keeps many triples: start from the first
pair of ref_ent_ids, then repeatedly add the gold pair with the most triples into the chosen
entities (both sides together); then a few non-gold neighbours per side. Every kept line is
copied byte for byte (CRLF included), in the original order.
"""
import json, sys
from collections import Counter, defaultdict

def lines(path):
    with open(path, "rb") as f:
        return [l for l in f.read().split(b"\n") if l.strip()]

def ids(line, n):
    return tuple(int(x) for x in line.decode().strip().split("\t")[:n])

def cut(src, dst, n_pairs, n_extra, must_pairs=(), must_extra=()):
    import os
    os.makedirs(dst, exist_ok=True)
    ref = lines(src + "/ref_ent_ids")
    sup = lines(src + "/sup_ent_ids") if os.path.exists(src + "/sup_ent_ids") else []
    pairs = [ids(l, 2) for l in ref + sup]
    adj = {s: defaultdict(set) for s in "12"}
    trip = {s: lines(f"{src}/triples_{s}") for s in "12"}
    for s in "12":
        for l in trip[s]:
            h, r, t = ids(l, 3)
            adj[s][h].add(t); adj[s][t].add(h)
    chosen = {"1": set(), "2": set()}
    picked = []
    def add(p):
        picked.append(p); chosen["1"].add(p[0]); chosen["2"].add(p[1])
    add(pairs[0])
    for p in must_pairs:
        add(p)
    position = {p: i for i, p in reversed(list(enumerate(pairs)))}
    candidates = set(pairs[1:]) - set(picked)
    while len(picked) < n_pairs:
        best = max(candidates, key=lambda p: (len(adj["1"][p[0]] & chosen["1"]) + len(adj["2"][p[1]] & chosen["2"]), -position[p]))
        candidates.discard(best); add(best)
    gold_ids = {s: {p[i] for p in pairs} for i, s in enumerate("12")}
    for s in "12":
        counts = Counter(n for e in list(chosen[s]) for n in adj[s][e] if n not in chosen[s] and n not in gold_ids[s])
        for n, _ in counts.most_common(n_extra):
            chosen[s].add(n)
    for s, e in must_extra:
        chosen[s].add(e)
    for s in "12":
        keep = [l for l in lines(f"{src}/ent_ids_{s}") if ids(l, 1)[0] in chosen[s]]
        open(f"{dst}/ent_ids_{s}", "wb").write(b"\n".join(keep) + b"\n")
        kept_t = [l for l in trip[s] if ids(l, 3)[0] in chosen[s] and ids(l, 3)[2] in chosen[s]]
        open(f"{dst}/triples_{s}", "wb").write(b"\n".join(kept_t) + b"\n")
        rels = {ids(l, 3)[1] for l in kept_t}
        if os.path.exists(f"{src}/rel_ids_{s}"):
            keep_r = [l for l in lines(f"{src}/rel_ids_{s}") if ids(l, 1)[0] in rels]
            open(f"{dst}/rel_ids_{s}", "wb").write(b"\n".join(keep_r) + b"\n")
        print(dst, s, "entities", len(keep), "triples", len(kept_t), "relations", len(rels))
    both = lambda l: ids(l, 2)[0] in chosen["1"] and ids(l, 2)[1] in chosen["2"]
    for name, src_lines in (("ref_ent_ids", ref), ("sup_ent_ids", sup)):
        if src_lines:
            keep = [l for l in src_lines if both(l)]
            open(f"{dst}/{name}", "wb").write(b"\n".join(keep) + b"\n")
            print(dst, name, len(keep))
    names = json.load(open(src + "/translated_names.json", encoding="utf-8"))
    every = chosen["1"] | chosen["2"]
    kept_n = [n for n in names if n[0] in every]
    open(f"{dst}/translated_names.json", "w", encoding="utf-8").write(json.dumps(kept_n, ensure_ascii=False))
    print(dst, "names", len(kept_n))

D = "../shared/data/"  # run from the project root
T = "tests/data/dbp15k_mini/"
cut(D + "seu_dbp_fr_en", T + "dbp_fr_en", 40, 10, must_pairs=[(9808, 20308)], must_extra=[("1", 27974)])
cut(D + "seu_srprs_fr_en", T + "srprs_fr_en", 40, 10)
