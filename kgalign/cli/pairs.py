"""`kgalign pairs`: label the candidate pairs of a DeepMatcher/Ditto benchmark file."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import click
from click.core import ParameterSource

from kgalign.cli.common import RunCommand, attach, check_outdir, help_all
from kgalign.cli.console import echo_summary, output_options
from kgalign.cli.run import check_judge_settings
from kgalign.cli.summary import pairs_block
from kgalign.errors import KgalignError
from kgalign.outputs import CACHE_FILE

log = logging.getLogger("kgalign")


#: The options of `kgalign run` that `kgalign pairs` takes too (by their config field), all shown in --help.
PAIRS_RUN_OPTIONS = (
    "judge", "model", "adapter", "vote.rounds", "vote.options", "seed", "device", "retrieval.dense_weight", "embedder",
    "embed_precision", "embed_engine", "embed_max_tokens", "vote.gate_margin", "vote.early_stop", "vote.plurality", "vote.datamark",
    "vote.none_bias", "vote.question", "vote.pair_threshold",
)


def _pairs_options(function):
    from dataclasses import replace

    from kgalign.cli.run_options import RUN_OPTIONS, click_options

    chosen = [o for o in RUN_OPTIONS if o.decls == ("--config",)]
    chosen += [replace(o, expert=False) for path in PAIRS_RUN_OPTIONS for o in RUN_OPTIONS if o.path == path]
    for option in reversed(click_options(tuple(chosen))):
        function = attach(function, option)
    return function


@click.command(cls=RunCommand)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--valid", type=click.Path(path_type=Path), help="Labelled pair file (same layouts as FILE) on which --judge none chooses its threshold, and a judge its --none-bias (unless given): the one with the best F1 there. FILE's labels are never used to choose anything.")
@click.option("--threshold", type=click.FloatRange(-1, 1), help="Least retrieval score the best pair of a question needs to be a match without the judge (instead of choosing it on --valid). With a judge it applies to gated questions only.")
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), help="Directory for predictions.tsv (index, prediction, confidence per pair), votes.jsonl (one decision per question) and metrics.json, and the judge's answer cache. Default: print the scores only.")
@click.option("--gate/--no-gate", "pairs_gate", default=False, show_default=True, help="Accept a question's best pair without asking the judge when it is its right record's best left record too and leads the runner-up by --gate-margin (off: the judge is asked every question).")
@click.option("--judge-check/--no-judge-check", "judge_check", default=True, show_default=True, help="With a judge and --valid: the judge is asked about FILE only if its best F1 on --valid reaches retrieval's best F1 there; else FILE is decided as with --judge none (said in the summary and metrics.json's judge_check).")
@_pairs_options
@click.option("--no-cache", is_flag=True, help="Do not read or write the judge's answer cache (OUTDIR/judge-cache.sqlite).")
@click.option("--force", is_flag=True, help="Write into OUTDIR even if it holds other files.")
@output_options
@click.option("--help-all", is_flag=True, expose_value=False, is_eager=True, callback=help_all, help="Show every option, the judge backends' expert ones included, and exit.")
@click.pass_context
def pairs(ctx: click.Context, file: Path, valid: Path | None, threshold: float | None, outdir: Path | None, pairs_gate: bool, judge_check: bool, **opts) -> None:
    """Label the candidate pairs of FILE as matches or not, and score them (the DeepMatcher/Ditto protocol).

    FILE lists labelled candidate pairs of records: the Ditto/DeepMatcher text layout
    (`COL attr VAL value ...<TAB>COL attr VAL value ...<TAB>0|1` per line) or a DeepMatcher
    CSV (.csv: `label` and ltable_X/rtable_X columns, or ltable_id/rtable_id with
    tableA.csv and tableB.csv beside it). The pairs of one left record make one
    question: its right records, best retrieval score first, plus "none of these".
    A judge votes on it as `kgalign run` does; with --judge none, the best-scoring
    record wins when its score reaches the threshold (--valid or --threshold). A pair
    is predicted a match iff its right record won. Prints precision, recall and F1 of
    the match class on FILE's labels. See docs/pairs.md.
    """
    from kgalign.cli.run_options import config_from_command_line
    from kgalign.config import read_config_file
    from kgalign.pairs import match_pairs

    config = config_from_command_line(ctx, opts)
    from_file = read_config_file(opts["config"]) if opts.get("config") else {}
    gate_given = ctx.get_parameter_source("pairs_gate") in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    if gate_given or "gate" not in (from_file.get("vote") or {}):
        config = config.replace(vote={"gate": pairs_gate})
    if outdir is not None and not opts["no_cache"]:
        config = config.replace(cache_path=str(outdir / CACHE_FILE))
    check_judge_settings(config)
    if config.judge == "none" and valid is None and threshold is None:
        raise KgalignError("--judge none needs a threshold: give --valid FILE (a labelled pair file to choose it on) or --threshold X")
    if valid is not None and threshold is not None:
        raise click.UsageError("give --valid (to choose the threshold) or --threshold, not both")
    created = outdir is not None and not outdir.exists()
    if outdir is not None:
        _check_pairs_outdir(outdir, opts["force"])
    try:
        bias_given = ctx.get_parameter_source("vote__none_bias") in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT) or "none_bias" in (
            from_file.get("vote") or {}
        )
        result = match_pairs(file, valid, config, threshold=threshold, none_bias=config.vote.none_bias if bias_given else None, check=judge_check)
        if outdir is not None:
            result.save(outdir)
    except BaseException:
        if created and outdir is not None:
            with contextlib.suppress(OSError):
                outdir.rmdir()  # only if the failed run left it empty
        raise
    m = result.metrics
    if m["threshold"] is None:
        chosen = "threshold=none (the judge decides)"
    elif m["threshold_from"] == "valid":
        chosen = f"threshold={m['threshold']:.4f} (chosen on {valid}: F1 {m['valid_f1']:.4f} there)"
    else:
        chosen = f"threshold={m['threshold']:.4f} (given)"
    if m["none_bias_from"] == "valid":
        chosen += f"; none bias {m['none_bias']:+.2f} (chosen on {valid}: F1 {m['none_bias_valid_f1']:.4f} there, {m['none_bias_valid_f1_unbiased']:.4f} without)"
    elif m["none_bias"]:
        chosen += f"; none bias {m['none_bias']:+.2f}"
    if m.get("pair_threshold_from") == "valid":
        chosen += f"; pairwise threshold {m['pair_threshold']:.2f} (chosen on {valid}: F1 {m['pair_threshold_valid_f1']:.4f} there)"
        if m.get("trained_pair_threshold") is not None:
            chosen += f"; at the training's {m['trained_pair_threshold']:.2f}: F1 {m['trained_pair_threshold_f1']:.4f}"
    elif m.get("pair_threshold_from") == "training":
        chosen += f"; pairwise threshold {m['pair_threshold']:.2f} (the judge's training chose it)"
    elif m.get("pair_threshold") is not None:
        chosen += f"; pairwise threshold {m['pair_threshold']:.2f}"
    checked = m.get("judge_check")
    if checked and not checked["trusted"]:
        chosen += (
            f"; judge not trusted: its F1 on {valid} {checked['judge_valid_f1']:.4f} < retrieval's {checked['retrieval_valid_f1']:.4f}, "
            "FILE decided without it"
        )
    result_lines = [
        f"precision={m['precision']:.4f}  recall={m['recall']:.4f}  f1={m['f1']:.4f}  {chosen}",
        f"{m['pairs']} pairs, {m['questions']} questions, {m['positives']} labelled 1, {m['predicted']} predicted 1, "
        f"{m['true_positives']} correct; judge {m['judge']}: {m['asked']} asked, {m['gated']} gated, "
        f"{m['llm_questions']} LLM questions; {m['seconds']:.1f}s" + (f" -> {outdir}" if outdir is not None else ""),
    ]
    echo_summary(pairs_block(file, m, outdir), result_lines)


def _check_pairs_outdir(outdir: Path, force: bool) -> None:
    from kgalign.pairs import PAIRS_OUTPUTS

    check_outdir(outdir, force, known=frozenset({*PAIRS_OUTPUTS, CACHE_FILE, CACHE_FILE + "-wal", CACHE_FILE + "-shm"}))
