"""The judge a run asks: the configured backend, built on its first question, behind the answer cache."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from kgalign.config import AlignConfig
from kgalign.judging.adapters import judge_adapter, warn_other_question
from kgalign.judging.base import Judge, judge_spec, make_judge
from kgalign.judging.cache import AnswerCache, CachedJudge
from kgalign.judging.lazy import LazyJudge

#: What makes the judge a run asks out of its name and a function that builds it: by default
#: :class:`LazyJudge` (built in this process on first use); ``--engine ray`` serves it from actors.
Serve = Callable[[str, Callable[[], Judge]], Judge]


def build_judge(
    config: AlignConfig, judge: Judge | None = None, serve: Serve | None = None, device: str | None = None
) -> tuple[CachedJudge | None, AnswerCache | None]:
    """``judge`` (an object), else the backend ``config.judge`` with its options; None for "none".

    ``config`` is the run's effective config (device resolved). A registered backend is
    built lazily: a run whose every source is gated loads no model. With ``serve``, the
    backend (or ``judge``) is what ``serve`` makes of it; the answer cache stays here.
    ``device``: where an engine builds the backend (its workers'), instead of ``config.device``.
    """
    if judge is None and config.judge == "none":
        return None, None
    cache = AnswerCache(config.cache_path) if config.cache_path else None
    if judge is not None:
        given = judge
        return CachedJudge(serve(given.name, lambda: given) if serve else given, cache), cache
    spec = judge_spec(config.judge)
    options = {key: value for key, value in config.judge_options.items() if value is not None}
    if config.model:
        options["model"] = config.model
    adapter = judge_adapter(*config.judge_choice)
    warn_other_question(*config.judge_choice)
    if adapter:
        options["adapter"] = adapter
    if spec.takes_device:
        options.setdefault("device", device or config.device)
    if spec.takes_seed:
        options.setdefault("seed", config.seed)
    name = config.judge
    inner = (serve or LazyJudge)(name, partial(make_judge, name, **options))
    return CachedJudge(inner, cache), cache


def judge_id(judge: CachedJudge | None, config: AlignConfig) -> str:
    """The judge's model id for run.json; a backend never built (nothing asked) is named by its options."""
    if judge is None:
        return "none"
    if judge.loaded:
        return judge.model_id
    model = Path(config.model).name if config.model else config.judge_options.get("llm_model") or "default model"
    return f"{config.judge}:{model} (not loaded: no question was asked)"
