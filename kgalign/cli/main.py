"""The ``kgalign`` command: a thin Click layer over the library.

Exit codes: 0 success, 1 error (a one-line message), 2 usage error.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from kgalign import __version__
from kgalign.cli.common import quiet
from kgalign.errors import KgalignError, one_line
from kgalign.runtime.device import resolve_device

log = logging.getLogger("kgalign")


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


class KgalignGroup(click.Group):
    """Turns library errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        from kgalign.runtime.gctune import relaxed_gc

        try:
            with relaxed_gc():  # every command builds large graphs or tables
                return super().invoke(ctx)
        except KgalignError as exc:
            from kgalign.runtime.redact import redact_text

            click.echo(f"kgalign: error: {one_line(redact_text(str(exc)))}", err=True)
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

    The main job is `kgalign run LEFT RIGHT -o OUTDIR`; `kgalign pairs FILE` labels the
    candidate pairs of an entity-matching benchmark (DeepMatcher, Ditto). Everything runs
    offline, on the CPU by default.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _setup_logging(log_level)


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

    from kgalign.config import AlignConfig, RetrievalConfig
    from kgalign.finetune import DataConfig, TrainConfig, gold_data, teacher_data
    from kgalign.finetune import finetune as train_adapter
    from kgalign.finetune.train import check_output, summary_lines

    quiet(opts["quiet"])
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
    if opts["votes"]:
        data = teacher_data(
            opts["votes"], data_config, left, right, opts["min_confidence"], opts["include_none"], opts["corrections"],
            id_column=opts["id_column"],
        )
    else:
        assert left is not None and right is not None  # the gold recipe needs both (checked above)
        align_config = AlignConfig(
            judge="none",
            embedder=opts["embedder"],
            device=device,
            left_format=opts["fmt"],
            right_format=opts["fmt"],
            id_column=opts["id_column"],
            attributes=tuple(opts["attributes"]),
            retrieval=RetrievalConfig(k=opts["top_k"]),
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


from kgalign.cli.convert import convert  # noqa: E402  (the group above must exist first)
from kgalign.cli.pairs import pairs  # noqa: E402
from kgalign.cli.review import evaluate, inspect, profile, report  # noqa: E402
from kgalign.cli.run import rerun, run  # noqa: E402

for _command in (run, rerun, pairs, profile, inspect, report, evaluate, convert):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
