"""`--device`: where the embedder, the local judge and fine-tuning run.

The first group runs everywhere (CI has no GPU): names are checked, ``auto`` falls back
to the CPU without importing torch, and asking for a GPU that is not there stops a run
with one line before anything is written. The ``gpu`` group runs the same interfaces
on a CUDA GPU (real MiniLM, real SmolLM2, real LoRA steps) and checks that they agree
with the CPU; it is skipped where torch sees no GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import cli as _cli

from kgalign.runtime.device import nvidia_driver_present, resolve_device
from kgalign.errors import KgalignError


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not _cuda(), reason="torch sees no CUDA GPU")
needs_no_cuda = pytest.mark.skipif(_cuda(), reason="this machine has a CUDA GPU")


def test_names_resolve_and_unknown_ones_are_refused() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" CPU ") == "cpu"
    assert resolve_device("auto") == ("cuda" if _cuda() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    with pytest.raises(KgalignError, match=r"--device must be auto .*, not 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(KgalignError, match="--gpu must be"):
        resolve_device("cuda0", option="--gpu")


@pytest.mark.skipif(nvidia_driver_present(), reason="this machine has an NVIDIA driver")
def test_auto_on_a_machine_without_a_gpu_does_not_import_torch() -> None:
    code = "import sys; from kgalign.runtime.device import resolve_device; print(resolve_device('auto'), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["cpu", "False"]


@needs_no_cuda
def test_a_missing_gpu_stops_run_and_finetune_with_one_line(persons, tmp_path: Path) -> None:
    with pytest.raises(KgalignError, match="torch sees no CUDA GPU"):
        resolve_device("cuda:1")
    out = tmp_path / "out"
    result = _cli(["run", persons["left"], persons["right"], "-o", out, "--device", "cuda", "--quiet"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--device cuda: torch sees no CUDA GPU" in lines[0]
    assert not out.exists()
    adapter = tmp_path / "adapter"
    tuned = _cli(["finetune", persons["left"], persons["right"], "--links", persons["gold"], "-o", adapter, "--device", "cuda:0", "--max-steps", 1, "--quiet"])
    assert tuned.exit_code == 1 and "--device cuda:0: torch sees no CUDA GPU" in tuned.output
    assert not any(adapter.glob("*")) if adapter.exists() else True


def test_run_records_the_device_it_ran_on(mini_persons, tmp_path: Path) -> None:
    pair = mini_persons(tmp_path, 8)
    out = tmp_path / "out"
    result = _cli(["run", pair["left"], pair["right"], "-o", out, "--device", "cpu", "--gold", pair["gold"], "--quiet"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["device"] == "cpu"
    assert json.loads((out / "metrics.json").read_text())["f1"] == 1.0


# --- on a CUDA GPU ----------------------------------------------------------------


@gpu
@needs_cuda
def test_embedder_on_the_gpu_agrees_with_the_cpu() -> None:
    from kgalign.retrieval.embed import SentenceTransformerEmbedder

    texts = ["Paris", "Jean-Paul Sartre, philosophe", "Abt Sony Bravia KDL-40V4100 40in LCD HDTV", "ÉCOLE NORMALE SUPÉRIEURE"] * 8
    cpu = SentenceTransformerEmbedder(device="cpu", precision="float32", engine="torch").encode(texts)
    cuda = SentenceTransformerEmbedder(device="cuda", precision="float32", engine="torch")
    assert cuda.engine == "torch"
    vectors = cuda.encode(texts)
    assert vectors.dtype == np.float32 and vectors.shape == cpu.shape
    assert float(np.min(np.sum(vectors * cpu, axis=1))) > 0.9999


@gpu
@needs_cuda
def test_local_judge_on_the_gpu_answers_as_on_the_cpu(persons, embedder) -> None:
    from kgalign.finetune import DataConfig, gold_data
    from kgalign.judging.local import LocalJudge
    from kgalign.config import AlignConfig
    from kgalign.config import RetrievalConfig

    align_config = AlignConfig(judge="none", device="cpu", retrieval=RetrievalConfig(k=10))
    data = gold_data(persons["left"], persons["right"], persons["gold"], DataConfig(options=3, permutations=1), align_config, embedder=embedder)
    questions = [example.question for example in data.train[:12]]
    cpu = LocalJudge(batch_size=4, dtype="float32")
    cuda = LocalJudge(batch_size=4, dtype="float32", device="cuda")
    assert next(cuda.model.parameters()).device.type == "cuda"
    for a, b in zip(cpu.letter_scores(questions), cuda.letter_scores(questions), strict=True):
        assert a.keys() == b.keys()
        assert max(abs(a[k] - b[k]) for k in a) < 1e-3
    assert [x.choice for x in cpu.answer(questions)] == [x.choice for x in cuda.answer(questions)]


@gpu
@needs_cuda
def test_run_and_finetune_on_the_gpu(mini_persons, tmp_path: Path) -> None:
    pair = mini_persons(tmp_path, 8)
    adapter = tmp_path / "adapter"
    tuned = _cli(["finetune", pair["left"], pair["right"], "--links", pair["gold"], "-o", adapter, "--device", "cuda", "--max-steps", 3, "--max-val", 2, "--eval-every", 0, "--quiet"])
    assert tuned.exit_code == 0, tuned.output
    assert json.loads((adapter / "kgalign-finetune.json").read_text())["device"] == "cuda"
    out = tmp_path / "out"
    result = _cli(["run", pair["left"], pair["right"], "-o", out, "--judge", "local", "--adapter", adapter, "--no-gate", "--device", "cuda", "--quiet"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["device"] == "cuda" and run["counts"]["llm_questions"] > 0
