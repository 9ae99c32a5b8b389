"""The CPU kernels' process settings are made before kgalign's first torch call
(kgalign/runtime/torch_env.py), unless the user set them: oneDNN's kernel cache capped,
and OpenMP's idle threads sleeping rather than spinning. Checked in fresh processes,
where the variables are read: the capacity as the model's first kernel reads it, the
wait policy as every OpenMP runtime loaded (torch's, faiss's) displays it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from kgalign.runtime.torch_env import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_VARIABLE, OPENMP_WAIT_VARIABLE

SCRIPT = """
import os
from kgalign.retrieval.embed import SentenceTransformerEmbedder
embedder = SentenceTransformerEmbedder(engine="torch")
capacity = os.environ.get("{variable}")  # as the model's first kernel will read it
vectors = embedder.encode(["Marie Curie", "Pierre Curie | Paris"])
assert vectors.shape == (2, 384)
print(capacity)
"""


def _settings_seen(env: dict[str, str]) -> tuple[str, list[str]]:
    """The kernel cache's capacity, and the wait policy each OpenMP runtime started with."""
    env = {**env, "OMP_DISPLAY_ENV": "TRUE"}
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(variable=ONEDNN_CACHE_VARIABLE)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    policies = re.findall(r"OMP_WAIT_POLICY = '(\w+)'", done.stderr + done.stdout)
    return done.stdout.strip().splitlines()[-1], policies


@pytest.mark.parametrize("user_values", [None, ("64", "ACTIVE")])
def test_the_embedder_sets_the_kernel_defaults_unless_the_user_set_them(user_values) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (ONEDNN_CACHE_VARIABLE, OPENMP_WAIT_VARIABLE)}
    if user_values is not None:
        env[ONEDNN_CACHE_VARIABLE], env[OPENMP_WAIT_VARIABLE] = user_values
    capacity, policies = _settings_seen(env)
    assert capacity == (user_values[0] if user_values else str(ONEDNN_CACHE_CAPACITY))
    # torch's OpenMP at least; faiss may bring its own: each one reads the policy.
    assert policies and set(policies) == {user_values[1] if user_values else "PASSIVE"}, policies
