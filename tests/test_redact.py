"""Credentials in --llm-url and the API key stay out of run.json, votes.jsonl, the log and error lines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openai_server import FakeOpenAIServer

from kgalign.runtime.redact import RedactingFilter, redact_options, redact_text, redact_url, register_secret, url_secrets

KEY_ENV = "KGALIGN_TEST_REDACT_KEY"
SECRET = "sk-kgalign-redact-secret-9876543210"
USER, PASSWORD = "alice-gw", "pw-Zq81-redacted"
QUERY_TOKEN = "qtok-5511-never-logged"

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("https://user:pass@gw.example/v1", "https://***@gw.example/v1"),
        ("https://tokenonly@gw.example/v1", "https://***@gw.example/v1"),
        ("https://u:p@ss@gw.example:8443/v1", "https://***@gw.example:8443/v1"),
        ("user:pass@gw.example:8000/v1", "***@gw.example:8000/v1"),
        ("http://[::1]:8000/v1?api-version=2024-06-01", "http://[::1]:8000/v1?api-version=2024-06-01"),
        ("https://gw.example/v1?api_key=abc&model=x", "https://gw.example/v1?api_key=***&model=x"),
        ("https://gw.example/v1?access_token=abc&Signature=s&X-Amz-Credential=c", "https://gw.example/v1?access_token=***&Signature=***&X-Amz-Credential=***"),
        ("https://gw.example/v1?k=sk-abcdefghijklmnop", "https://gw.example/v1?k=***"),
        ("https://gw.example/v1?id=4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e", "https://gw.example/v1?id=***"),
        ("https://gw.example/v1?flag&page=2", "https://gw.example/v1?flag&page=2"),
        ("https://gw.example/v1#token=abc", "https://gw.example/v1#token=***"),
        ("https://gw.example/v1?email=a@b.example", "https://gw.example/v1?email=a@b.example"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_url_secrets_and_options() -> None:
    url = f"https://{USER}:{PASSWORD}@gw.example/v1?api%5Fkey={QUERY_TOKEN}&page=2"
    assert url_secrets(url) == [USER, PASSWORD, QUERY_TOKEN]
    options = {"base_url": url, "key_env": "OPENAI_API_KEY", "api_key": "literal", "concurrency": 8, "llm_model": "m"}
    assert redact_options(options) == {
        "base_url": "https://***@gw.example/v1?api%5Fkey=***&page=2",
        "key_env": "OPENAI_API_KEY",
        "api_key": "***",
        "concurrency": 8,
        "llm_model": "m",
    }


def test_log_records_and_their_tracebacks_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    register_secret(SECRET)
    logger = logging.getLogger("kgalign.test_redact")
    caplog.handler.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.DEBUG, logger=logger.name):
            logger.debug("POST %s with key %s", f"http://{USER}:{PASSWORD}@h/v1?token={QUERY_TOKEN}", SECRET)
            try:
                raise ConnectionError(f"cannot reach https://{USER}:{PASSWORD}@h/v1 (key {SECRET})")
            except ConnectionError:
                logger.exception("request failed")
    finally:
        caplog.handler.filters.clear()
    assert caplog.records[0].getMessage() == "POST http://***@h/v1?token=*** with key ***"
    assert "***@h/v1 (key ***)" in caplog.text
    for secret in (SECRET, PASSWORD, QUERY_TOKEN, USER):
        assert secret not in caplog.text
    assert redact_text(f"echo {SECRET}") == "echo ***"


def _kgalign(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **{KEY_ENV: SECRET})
    return subprocess.run([sys.executable, "-m", "kgalign.cli.main", *args], capture_output=True, text=True, env=env, timeout=240)


def test_cli_keeps_url_credentials_and_the_key_out_of_its_outputs_and_debug_log(persons: dict[str, Path], tmp_path: Path) -> None:
    common = ["--judge", "openai", "--llm-key-env", KEY_ENV, "--no-gate", "--quiet", "--rounds", "1", "--options", "2", "-k", "2"]
    with FakeOpenAIServer() as server:
        host = server.url.split("://", 1)[1].split("/", 1)[0]
        outdir = tmp_path / "out"
        url = f"http://{USER}:{PASSWORD}@{host}/v1"
        done = _kgalign("--log-level", "debug", "run", str(persons["left"]), str(persons["right"]), "-o", str(outdir), "--llm-url", url, "--llm-model", server.model, *common)
        assert done.returncode == 0, done.stderr[-3000:]
        assert server.requests  # the judge was asked, through the URL with credentials
        # A query token (as some gateways want it): sent with every request, never written.
        server.requests.clear()
        queried = _kgalign("--log-level", "debug", "run", str(persons["left"]), str(persons["right"]), "-o", str(tmp_path / "queried"), "--llm-url", f"http://{host}/v1?api_key={QUERY_TOKEN}", "--llm-model", server.model, *common)
        assert queried.returncode == 0, queried.stderr[-3000:]
        assert server.requests and all(r["query"] == f"api_key={QUERY_TOKEN}" for r in server.requests)
        # A server that refuses: the error line names it without the credential.
        failed = _kgalign("--log-level", "debug", "run", str(persons["left"]), str(persons["right"]), "-o", str(tmp_path / "failed"), "--llm-url", f"http://{host}/nowhere?api_key={QUERY_TOKEN}", "--llm-model", server.model, *common)
    assert failed.returncode == 1
    [error] = [line for line in failed.stderr.splitlines() if line.startswith("kgalign: error:")]
    assert error.startswith("kgalign: error: --judge openai: the server at ") and "api_key=***" in error
    queried_info = json.loads((tmp_path / "queried" / "run.json").read_text(encoding="utf-8"))
    assert queried_info["config"]["judge_options"]["base_url"] == f"http://{host}/v1?api_key=***"
    run_info = json.loads((outdir / "run.json").read_text(encoding="utf-8"))
    assert run_info["config"]["judge_options"]["base_url"] == f"http://***@{host}/v1"
    assert run_info["config"]["judge_options"]["key_env"] == KEY_ENV
    assert "http://***@" in done.stderr  # the openai client's debug lines name the URL, redacted
    texts = {
        "stdout+stderr": done.stdout + done.stderr + queried.stdout + queried.stderr + failed.stdout + failed.stderr,
        **{name: (outdir / name).read_text(encoding="utf-8") for name in ("run.json", "votes.jsonl", "provenance.trig")},
    }
    for where, text in texts.items():
        for secret in (SECRET, PASSWORD, QUERY_TOKEN, USER):
            assert secret not in text, f"{secret} in {where}"
