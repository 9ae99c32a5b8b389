"""Training memory is bounded: it does not grow with the length of the entities' text.

Questions are written in the compact layout (token budgets per value, source and
option), a step's batch is cut into micro-batches of at most ``token_budget`` prompt
tokens, and on a CPU activations are recomputed in the backward pass. Each training
step here runs in a fresh Python process (real SmolLM2-135M, real LoRA), whose peak
resident memory is read from the kernel (VmHWM), once on entities already at their budgets and
once on entities ten times longer: the peaks must be the same up to noise, and under
the issue's 4 GB with room to spare.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kgalign.judging.prompt import MAX_OPTION_TOKENS, MAX_SOURCE_TOKENS, Question
from kgalign.model import EntityProfile

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = 5


def _entity(iri: str, repeat: int) -> EntityProfile:
    words = "Lorem ipsum dolor sit amet consectetur 1234 Straße"
    attributes = [(f"has_part/attr_{i}", f"{iri} {i} " + " ".join([words] * repeat)) for i in range(12 if repeat else 1)]
    return EntityProfile(iri, f"{iri} " + " ".join([words] * repeat), attributes=attributes)


def _question(repeat: int) -> Question:
    return Question(source=_entity("urn:s", repeat), options=tuple(_entity(f"urn:o{i}", repeat) for i in range(OPTIONS)))


def test_a_question_is_held_to_its_token_budgets() -> None:
    from kgalign.judging.local import chat_prompt, default_model_path, load_tokenizer

    tokenizer = load_tokenizer(default_model_path())

    def tokens(repeat: int) -> int:
        return len(tokenizer(chat_prompt(tokenizer, _question(repeat)), add_special_tokens=False)["input_ids"])

    short, long, huge = tokens(0), tokens(40), tokens(200)
    assert long == huge  # past the budgets, longer text adds nothing
    # Entities cost at most their budgets (estimated tokens bound real ones from above).
    assert long - short <= MAX_SOURCE_TOKENS + OPTIONS * MAX_OPTION_TOKENS
    assert short < long


STEP = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(1)
    from kgalign.finetune.data import Example
    from kgalign.finetune.train import TrainConfig, add_lora, answer_loss, collate, enable_checkpointing, encode, load_base, micro_batches
    sys.path.insert(0, sys.argv[2])
    from test_finetune_memory import _question

    def high_water_kb():
        # VmHWM is this process's own peak; ru_maxrss would carry the parent's across fork and exec.
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

    repeat = int(sys.argv[1])
    base, tokenizer, _ = load_base(None, "cpu")
    model = add_lora(base, TrainConfig())
    enable_checkpointing(model)
    model.train()
    question = _question(repeat)
    # Two questions of the longest kind: each its own micro-batch (the budget holds one),
    # so the peak is one micro-batch's, however many a step has; more would only take longer.
    examples = [Example(question=question, answer="A", source="urn:s", target="urn:o0")] * 2
    sequences = encode(tokenizer, examples)
    before = high_water_kb()
    for part in micro_batches(sequences, TrainConfig().token_budget):
        loss = answer_loss(model, collate(part, tokenizer.pad_token_id, "cpu")) * (len(part) / len(sequences))
        loss.backward()
    peak = high_water_kb()
    print(json.dumps({"tokens": len(sequences[0]), "loaded_kb": before, "peak_kb": peak}))
    """
)


def _peaks(*repeats: int) -> list[dict[str, int]]:
    """Each step's figures, the steps run side by side (one thread each: this machine's two cores)."""
    steps = [
        subprocess.Popen([sys.executable, "-c", STEP, str(repeat), str(ROOT / "tests")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for repeat in repeats
    ]
    figures = []
    for step in steps:
        out, err = step.communicate(timeout=300)
        assert step.returncode == 0, err[-2000:]
        figures.append(json.loads(out.strip().splitlines()[-1]))
    return figures


def test_a_training_step_takes_the_same_memory_however_long_the_entities() -> None:
    at_cap, beyond = _peaks(20, 200)  # entities already at their budgets, and ten times longer
    assert at_cap["tokens"] == beyond["tokens"]
    grown_mb = (beyond["peak_kb"] - at_cap["peak_kb"]) / 1024
    # The same tokens make the same tensors; the two processes' peaks still differ run to run
    # (by up to 650 MB in CI, 2026-11-27, both steps at 538 tokens). Uncapped, the longer
    # entities would make ten times the tokens, and the peak grow by gigabytes.
    assert grown_mb < 1024, (at_cap, beyond)
    assert beyond["peak_kb"] < 3 * 1024 * 1024, beyond  # the bound is 4 GB for a whole finetune run
