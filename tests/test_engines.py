"""Engines are found by name: `--engine local` is the in-process pipeline; a registered one is used."""

from __future__ import annotations

import json

import pytest

from kgalign.config import AlignConfig
from kgalign.errors import ConfigError
from kgalign.pipeline import run_local
from kgalign.runtime.engines import ENGINES, register_engine
from tests.helpers import cli


def test_local_engine_by_name_and_a_registered_one(persons, tmp_path):
    local = tmp_path / "local"
    assert cli(["run", persons["left"], persons["right"], "-o", local, "--engine", "local", "--quiet"]).exit_code == 0
    assert json.loads((local / "run.json").read_text())["config"]["engine"] == "local"
    calls = []

    def counting(left, right, config, embedder, judge, old):
        calls.append((str(left), str(right)))
        return run_local(left, right, config, embedder, judge, old)

    register_engine("counting", counting, "the local engine, counting its runs")
    try:
        other = tmp_path / "other"
        result = cli(["run", persons["left"], persons["right"], "-o", other, "--engine", "counting", "--quiet"])
        assert result.exit_code == 0, result.output
        assert calls == [(str(persons["left"]), str(persons["right"]))]
        assert (other / "links.ttl").read_text() == (local / "links.ttl").read_text()
    finally:
        ENGINES.unregister("counting")
    with pytest.raises(ConfigError, match="engine: 'counting' is not one of local"):
        AlignConfig(engine="counting")


def test_an_engine_builds_the_judge_backend_for_its_workers_device():
    """build_judge(device=) (what --engine ray passes: its actors' device) overrides the run's
    device in the backend's options; without it the run's device is used."""
    from kgalign.judging.build import build_judge
    from kgalign.judging.testing import ScriptedJudge

    seen: list[dict] = []

    def serve(name, build):
        seen.append(dict(build.keywords))
        return ScriptedJudge(lambda question: None)

    config = AlignConfig(judge="local", device="cpu")
    build_judge(config, None, serve, device="cuda")
    build_judge(config, None, serve)
    assert [options["device"] for options in seen] == ["cuda", "cpu"]
