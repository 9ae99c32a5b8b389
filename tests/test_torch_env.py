"""oneDNN's kernel cache is capped before kgalign's first torch call (kgalign/runtime/torch_env.py),
unless the user set it: checked in fresh processes, where the variable is read."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kgalign.runtime.torch_env import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_VARIABLE

SCRIPT = """
import os
from kgalign.retrieval.embed import SentenceTransformerEmbedder
embedder = SentenceTransformerEmbedder(engine="torch")
capacity = os.environ.get("{variable}")  # as the model's first kernel will read it
vectors = embedder.encode(["Marie Curie", "Pierre Curie | Paris"])
assert vectors.shape == (2, 384)
print(capacity)
"""


def _capacity_seen(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(variable=ONEDNN_CACHE_VARIABLE)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("user_value", [None, "64"])
def test_the_embedder_caps_the_kernel_cache_unless_the_user_set_it(user_value) -> None:
    env = {k: v for k, v in os.environ.items() if k != ONEDNN_CACHE_VARIABLE}
    if user_value is not None:
        env[ONEDNN_CACHE_VARIABLE] = user_value
    assert _capacity_seen(env) == (user_value or str(ONEDNN_CACHE_CAPACITY))
