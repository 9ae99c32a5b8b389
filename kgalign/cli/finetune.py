"""``kgalign finetune``: train the judge's LoRA adapter (gold, teacher or multi-dataset recipe)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from kgalign.cli.common import FORMAT, FORMAT_HELP
from kgalign.cli.console import echo_summary, output_options
from kgalign.errors import KgalignError
from kgalign.io.atomic import check_output_path
from kgalign.runtime.device import resolve_device

#: Command-line options that are :class:`kgalign.finetune.TrainConfig` fields of the same name.
TRAIN_OPTIONS = (
    "max_steps", "batch_size", "lr", "warmup_steps", "lora_r", "lora_alpha", "lora_layers", "eval_every",
    "patience", "save_every", "max_val", "minutes", "seed", "dtype", "token_budget", "gradient_checkpointing", "full",
)
#: Command-line options that are :class:`kgalign.finetune.DataConfig` fields (option name -> field).
QUESTION_OPTIONS = {"n_options": "options", "permutations": "permutations", "none_share": "none_share", "val_share": "val_share", "seed": "seed", "datamark": "datamark", "question": "question", "negatives": "negatives"}


@click.command()
@click.argument("left", required=False, type=click.Path(path_type=Path))
@click.argument("right", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", "adapter_dir", type=click.Path(path_type=Path), help="(Required unless --save-questions.) Adapter directory: the best adapter (for `kgalign run --adapter`), kgalign-finetune.json, best/ and the last checkpoint-N/ folders.")
@click.option("--recipe", type=click.Path(path_type=Path, dir_okay=False), help="Multi-dataset recipe (TOML): [[source]] tables of graphs + gold links, labelled pair files and teacher votes, each with a cap and a weight; [questions] and [train] settings (options given here override them). See docs/judge.md.")
@click.option("--questions", "questions_file", type=click.Path(path_type=Path, dir_okay=False), help="Train on a question set saved by --save-questions (no graphs, pair files or embedder needed: build where the data is, train where the GPU is). Its recipe's [train] settings apply unless given here.")
@click.option("--save-questions", "save_file", type=click.Path(path_type=Path, dir_okay=False), help="Build the questions (any recipe), write them to FILE (gzipped JSON lines) and stop before loading any model; train on them later with --questions FILE.")
@click.option("--without", "left_out", multiple=True, metavar="NAME", help="Leave the recipe's source NAME out (repeatable): the leave-one-dataset-out protocol, one recipe for every run.")
@click.option("--links", type=click.Path(path_type=Path), help="Gold recipe: gold links of LEFT and RIGHT (any format of `kgalign eval`); the questions show each source's real retrieval candidates.")
@click.option("--from-votes", "votes", type=click.Path(path_type=Path), help="Teacher recipe: the votes.jsonl of an earlier run, whose confident decisions become the labels. The graphs are those named in the run.json beside it, unless LEFT and RIGHT are given.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.8, show_default=True, help="Teacher recipe: decisions below this confidence are not used (human decisions always are).")
@click.option("--include-none", is_flag=True, help="Teacher recipe: also learn the teacher's confident 'none' decisions (answer 'none of these').")
@click.option("--corrections", type=click.Path(path_type=Path), help="A reviewer's corrections file (from `kgalign report`): its verdicts are extra gold labels that override the recipe's.")
@click.option("--model", type=click.Path(path_type=Path), help="Base model folder (any local transformers causal LM). Default: SmolLM2-135M-Instruct, as the local judge.")
@click.option("--options", "n_options", type=click.IntRange(1, 20), help="Candidates shown per question (plus 'none of these'); use the --options of the runs that will load the adapter. Default: 5, or the teacher run's.")
@click.option("-k", "--top-k", type=click.IntRange(1, 100), default=10, show_default=True, help="Gold recipe: candidates retrieved per source entity.")
@click.option("--attributes", multiple=True, help="Gold recipe: attribute predicates to show, as `kgalign run --attributes` (pass the same to the runs).")
@click.option("--format", "fmt", type=FORMAT, metavar="FORMAT", help=f"Gold recipe: {FORMAT_HELP[0].lower()}{FORMAT_HELP[1:]}")
@click.option("--id-column", help="Id column of CSV/TSV inputs, as `kgalign run --id-column`.")
@click.option("--embedder", help="Gold recipe: sentence-transformers model folder for retrieval, as `kgalign run --embedder`.")
@click.option("--permutations", type=click.IntRange(1, 24), default=4, show_default=True, help="Candidate orders per question (by score, reversed, then seeded shuffles), so the answer is seen at every position.")
@click.option("--question", type=click.Choice(["pairwise", "choice"]), default="pairwise", show_default=True, help="The questions trained: pairwise (one question a pair, 'are these two records the same?', as `kgalign run` asks by default) or choice (one multiple-choice question over a source's candidates and 'none of these', for `kgalign run --question choice`).")
@click.option("--negatives", type=click.IntRange(0, 20), default=2, show_default=True, help="--question pairwise: the hardest non-matching candidates trained per match (AnyMatch: twice the positives).")
@click.option("--none-share", type=click.FloatRange(0, 0.9), default=0.2, show_default=True, help="Share of the sources with a match whose match is removed from the candidates (answer 'none of these'). A recipe's pair files default to 0 (they hold their own negatives).")
@click.option("--val-share", type=click.FloatRange(0, 0.9), default=0.2, show_default=True, help="Share of the labelled sources held out for validation (split by source).")
@click.option("--max-train", type=click.IntRange(1, None), help="Use at most this many training questions (a quick trial).")
@click.option("--max-val", type=click.IntRange(0, None), default=256, show_default=True, help="Validation questions evaluated (the first of the held-out ones; a recipe takes them from every source in turn).")
@click.option("--max-steps", type=click.IntRange(0, None), default=300, show_default=True, help="Optimizer steps in all (a resumed run counts the steps already done).")
@click.option("--minutes", type=click.FloatRange(0, None, min_open=True), help="Stop training after this many minutes (then evaluate and save).")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=8, show_default=True, help="Questions per optimizer step.")
@click.option("--token-budget", type=click.IntRange(64, None), default=1024, show_default=True, help="Most prompt tokens (questions x longest) in one forward pass: a step's questions are cut into micro-batches within it and their gradients summed, so memory does not grow with --batch-size.")
@click.option("--gradient-checkpointing", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True, help="Recompute each layer's activations in the backward pass instead of keeping them (less memory, about a third more compute). auto: on a CPU, off on a GPU.")
@click.option("--lr", type=click.FloatRange(0, 1, min_open=True), default=2e-4, show_default=True, help="Learning rate (AdamW, after a linear warm-up).")
@click.option("--warmup-steps", type=click.IntRange(0, None), default=10, show_default=True, help="Steps of linear learning-rate warm-up.")
@click.option("--lora-r", type=click.IntRange(1, 256), default=8, show_default=True, help="LoRA rank (vLLM loads ranks up to 512; keep it small).")
@click.option("--lora-alpha", type=click.IntRange(1, 1024), default=16, show_default=True, help="LoRA scaling numerator (the update is scaled by alpha / r).")
@click.option("--lora-layers", type=click.IntRange(0, None), default=0, show_default=True, help="Put adapters in the top N transformer layers only (0: all). Fewer layers train faster and in less memory (on a CPU, top 8 of SmolLM2's 30 halve the time of a step); vLLM loads either.")
@click.option("--eval-every", type=click.IntRange(0, None), default=50, show_default=True, help="Evaluate on the validation questions every N steps (0: only before and after).")
@click.option("--patience", type=click.IntRange(0, None), default=3, show_default=True, help="Stop after this many evaluations without a better validation score (best F1 over every threshold for pairwise questions, else accuracy; 0: never stop early).")
@click.option("--save-every", type=click.IntRange(0, None), default=50, show_default=True, help="Write ADAPTER_DIR/checkpoint-N every N steps (0: only at the end); the last two are kept.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in ADAPTER_DIR (adapter, optimizer and scheduler state, step count); needs the same data options.")
@click.option("--force", is_flag=True, help="Start over in an ADAPTER_DIR that holds an earlier adapter or checkpoints.")
@click.option("--full", is_flag=True, help="Train every weight of the model instead of a LoRA adapter (AnyMatch's full fine-tuning; give a smaller --lr, e.g. 2e-5). ADAPTER_DIR then holds a whole model with its tokenizer, for `kgalign run --model ADAPTER_DIR`; the --lora-* options do not apply; with --init-adapter every weight trains from the adapter's update merged into the model. Float32 weights and AdamW's state take about 16 bytes a parameter (2.2 GB for SmolLM2-135M).")
@click.option("--init-adapter", metavar="ADAPTER", help="Start from this adapter's weights instead of fresh ones: a folder, or a shipped adapter's name ('cross-domain', 'pairwise'). Use it to go on training the shipped judge on your own data. With --full the adapter is merged into the model's weights, which then all train. Its LoRA settings (rank, alpha, dropout, layers) replace --lora-r, --lora-alpha and --lora-layers (kgalign-finetune.json's \"lora\" records them); its base model should be --model's (a warning if it names another). Not with --resume, nor a folder inside ADAPTER_DIR.")
@click.option("--datamark", is_flag=True, help="Build the training questions as `kgalign run --datamark` asks them (words of data values joined by '^'): give both or neither.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the validation split, the 'none' examples, the candidate orders, the batches and LoRA's initial weights.")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE", help="Where training (and the gold recipe's embedder) runs: auto (the first CUDA GPU when torch sees one, else the CPU), cpu, cuda, cuda:N or mps.")
@click.option("--threads", type=click.IntRange(1, 1024), help="CPU threads of torch. Default: torch's (one per core); 1 is faster on a machine busy with other work.")
@click.option("--dtype", type=click.Choice(["auto", "bfloat16", "float32"]), default="auto", show_default=True, help="Arithmetic of training. auto: float32 weights under bfloat16 autocast where the CPU or GPU computes bfloat16 natively (about twice as fast), float32 otherwise. bfloat16: bfloat16 weights too (half the memory; auto's float32 weights are what was measured on a GPU).")
@output_options
@click.pass_context
def finetune(ctx: click.Context, left: Path | None, right: Path | None, adapter_dir: Path | None, **opts: Any) -> None:
    """Fine-tune the judge model with LoRA on questions asked exactly as a run asks them.

    \b
    Gold recipe:    kgalign finetune LEFT RIGHT --links GOLD -o ADAPTER_DIR
    Teacher recipe: kgalign finetune --from-votes OUTDIR/votes.jsonl -o ADAPTER_DIR
    Many datasets:  kgalign finetune --recipe RECIPE.toml -o ADAPTER_DIR
    Saved set:      kgalign finetune --recipe RECIPE.toml --save-questions Q.jsonl.gz
                    kgalign finetune --questions Q.jsonl.gz -o ADAPTER_DIR

    Prints validation accuracy (per recipe source too), for pairwise questions the best
    F1 over every threshold and the ROC AUC, and where the answers fall
    (position bias) before and after training, and writes them to
    ADAPTER_DIR/kgalign-finetune.json. Runs on the GPU when torch sees one (see
    --device). Use the result with `kgalign run --adapter ADAPTER_DIR`.
    """
    from dataclasses import replace

    from kgalign.finetune import TrainConfig
    from kgalign.finetune import finetune as train_adapter
    from kgalign.finetune.train import check_output, summary_lines

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)

    recipe_given = opts["recipe"] is not None
    saved_given = opts["questions_file"] is not None
    if saved_given and (recipe_given or left is not None or opts["links"] or opts["votes"] or opts["corrections"]):
        raise click.UsageError("--questions is a built question set: give no LEFT RIGHT, --recipe, --links, --from-votes or --corrections with it")
    if saved_given and opts["save_file"]:
        raise click.UsageError("--questions and --save-questions exclude each other")
    if recipe_given and (left is not None or opts["links"] or opts["votes"]):
        raise click.UsageError("--recipe names its own sources: give no LEFT RIGHT, --links or --from-votes with it")
    if opts["left_out"] and not recipe_given:
        raise click.UsageError("--without names sources of a --recipe")
    if not recipe_given and not saved_given:
        _check_single_source(left, right, opts)
    if opts["save_file"] is None:
        if adapter_dir is None:
            raise click.UsageError("give -o ADAPTER_DIR (or --save-questions FILE to only build the questions)")
        check_output(adapter_dir, opts["resume"], opts["force"])
    else:
        check_output_path(opts["save_file"], what="--save-questions")  # before the questions are built
    device = resolve_device(opts["device"])
    train_values = {name: opts[name] for name in TRAIN_OPTIONS}
    saved_train: dict[str, Any] = {}
    if saved_given:
        from kgalign.finetune.store import load_questions

        data, saved_train = load_questions(opts["questions_file"])
        train_values = {**train_values, **{k: v for k, v in saved_train.items() if not given(k)}}
    elif recipe_given:
        from kgalign.finetune.recipe import load_recipe, recipe_data

        recipe = load_recipe(opts["recipe"]).without(opts["left_out"])
        questions = replace(recipe.questions, **{f: opts[o] for o, f in QUESTION_OPTIONS.items() if given(o)})
        recipe = replace(recipe, questions=questions)
        saved_train = dict(recipe.train)
        train_values = {**train_values, **{k: v for k, v in recipe.train.items() if not given(k)}}
        data = recipe_data(recipe, device)
    else:
        data = _single_source_data(left, right, opts, device)
    if opts["max_train"]:
        data = replace(data, train=data.train[: opts["max_train"]])
    if opts["save_file"] is not None:
        from kgalign.finetune.store import save_questions

        path = save_questions(data, opts["save_file"], saved_train)
        summary = data.summary()
        click.echo(
            f"{summary['train']['questions']} training and {summary['val']['questions']} validation questions "
            f"({summary['train']['sources']} + {summary['val']['sources']} sources) -> {path}"
        )
        return
    assert adapter_dir is not None
    recipe_model = train_values.pop("model", None)  # a recipe's [train] may name the base model
    model = opts["model"] or recipe_model
    train_config = TrainConfig(
        model=str(model) if model else None,
        resume=opts["resume"],
        force=opts["force"],
        init_adapter=_init_adapter(opts["init_adapter"], adapter_dir, opts["resume"]),
        threads=opts["threads"],
        device=device,
        **train_values,
    )
    result = train_adapter(data, train_config, adapter_dir)
    lines = summary_lines(result)
    echo_summary(lines[:-1], lines[-1:])


def _init_adapter(value: str | None, adapter_dir: Path, resume: bool) -> str | None:
    """--init-adapter's folder (a folder, or a shipped adapter's name); one line if it is
    neither, or if it lies in ADAPTER_DIR (which training empties first)."""
    if not value:
        return None
    if resume:
        raise click.UsageError("--init-adapter starts a training; --resume goes on with the one in ADAPTER_DIR: give one of them")
    from kgalign.judging.adapters import adapter_folder

    folder = adapter_folder(value)
    if not (Path(folder) / "adapter_config.json").is_file():
        raise KgalignError(f"{folder}: not a LoRA adapter folder (no adapter_config.json)")
    if Path(folder).resolve().is_relative_to(adapter_dir.resolve()):
        raise KgalignError(f"{folder}: --init-adapter lies in ADAPTER_DIR {adapter_dir}, which training empties first; copy it elsewhere")
    return folder


def _check_single_source(left: Path | None, right: Path | None, opts: dict[str, Any]) -> None:
    if (left is None) != (right is None):
        raise click.UsageError("give both LEFT and RIGHT, or neither (with --from-votes)")
    if opts["votes"] and opts["links"]:
        raise click.UsageError("--links (gold recipe) and --from-votes (teacher recipe) exclude each other")
    if not opts["votes"] and left is None:
        raise click.UsageError("give LEFT RIGHT --links GOLD (gold recipe), --from-votes VOTES (teacher recipe) or --recipe FILE")
    if not opts["votes"] and not opts["links"] and not opts["corrections"]:
        raise click.UsageError("the gold recipe needs --links GOLD (or --corrections FILE)")


def _single_source_data(left: Path | None, right: Path | None, opts: dict[str, Any], device: str) -> Any:
    from kgalign.finetune import DataConfig, gold_data, teacher_data
    from kgalign.finetune.data import gold_align_config

    data_config = DataConfig(
        options=opts["n_options"] or (0 if opts["votes"] else 5),
        permutations=opts["permutations"],
        question=opts["question"],
        negatives=opts["negatives"],
        none_share=opts["none_share"],
        val_share=opts["val_share"],
        seed=opts["seed"],
        datamark=opts["datamark"],
    )
    if opts["votes"]:
        return teacher_data(
            opts["votes"], data_config, left, right, opts["min_confidence"], opts["include_none"], opts["corrections"],
            id_column=opts["id_column"],
        )
    assert left is not None and right is not None  # the gold recipe needs both (checked before)
    align_config = gold_align_config(
        device, opts["fmt"], opts["id_column"], opts["attributes"], opts["top_k"], opts["seed"], opts["embedder"]
    )
    return gold_data(left, right, opts["links"], data_config, align_config, opts["corrections"])


@click.command(name="extract-adapter")
@click.argument("model", type=click.Path(path_type=Path, file_okay=False))
@click.option("-o", "--output", "adapter_dir", type=click.Path(path_type=Path), required=True, help="New adapter folder (it must not exist): adapter_config.json, adapter_model.safetensors and kgalign-finetune.json (MODEL's training record, with what the extraction kept and left out under \"extracted\").")
@click.option("--rank", type=click.IntRange(1, 512), default=32, show_default=True, help="The adapter's rank: the number of singular directions kept of each layer's change (SmolLM2-135M: about 0.6 MB a unit in bfloat16, 20 MB at 32).")
@click.option("--base", type=click.Path(path_type=Path, file_okay=False), help="The model MODEL was fine-tuned from. Default: SmolLM2-135M-Instruct, as the local judge.")
@click.option("--dtype", type=click.Choice(["bfloat16", "float32"]), default="bfloat16", show_default=True, help="Arithmetic of the saved adapter weights (bfloat16: half the file).")
@click.option("--questions", "questions_file", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="Measure the adapter on this question set's validation questions (a set saved by `kgalign finetune --save-questions`, normally the one MODEL was trained on): its record then holds its own best F1, threshold and ROC AUC, which a run reads (the full model's are kept beside them). Without it the record keeps the full model's.")
@click.option("--max-val", type=click.IntRange(1, None), default=400, show_default=True, help="With --questions: the validation questions evaluated (the first ones, as training evaluates them).")
@output_options
def extract_adapter(model: Path, adapter_dir: Path, rank: int, base: Path | None, dtype: str, questions_file: Path | None, max_val: int) -> None:
    """Extract a LoRA adapter from a fully fine-tuned MODEL folder (`kgalign finetune --full`).

    Each linear layer's change from the base model is cut to its best rank-RANK
    approximation (truncated SVD), which is a LoRA update: the adapter loads wherever
    one does (`kgalign run --adapter`, vLLM, `kgalign finetune --init-adapter`) and
    ships where a whole model would not. The token embeddings and normalisation
    vectors are not carried; the summary says how far training moved them and what
    share of each layer kind's change the rank keeps. With --questions the adapter is
    then measured itself, and its record holds its own threshold:

    \b
      kgalign extract-adapter MODEL -o ADAPTER --rank 32 --questions Q.jsonl.gz
    """
    from kgalign.finetune.extract import extract_lora

    result = extract_lora(model, adapter_dir, rank, base, dtype, questions_file, max_val)
    kept = ", ".join(f"{kind} {share:.2f}" for kind, share in result.kept.items())
    moved = ", ".join(f"{group} {change:.2%}" for group, change in result.left_out.items()) or "nothing"
    echo_summary(
        [f"share of each layer kind's change kept: {kept}", f"moved by training, not carried: {moved} (relative change)"],
        [f"rank-{rank} adapter of {result.modules} layers, {result.parameters:,} weights, {result.bytes / 1e6:.1f} MB -> {result.output} ({result.seconds:.0f} s)"]
        + ([f"the adapter on {questions_file}: {result.measured.brief()}"] if result.measured else []),
    )
