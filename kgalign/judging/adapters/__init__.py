"""LoRA adapters shipped inside the package, found by name (``--adapter cross-domain``).

``cross-domain`` is SmolLM2-135M-Instruct's adapter trained on every public training
split of the benchmarks beside the project (two knowledge graphs, five product-offer
sets, one non-product table); its model card is ``cross_domain/README.md`` and its
training record ``cross_domain/kgalign-finetune.json``.
"""

from __future__ import annotations

from pathlib import Path

from kgalign.errors import KgalignError

#: Name -> folder beside this module.
SHIPPED = {"cross-domain": "cross_domain"}


def shipped_adapter(name: str) -> Path:
    """The folder of the shipped adapter ``name``."""
    try:
        return Path(__file__).resolve().parent / SHIPPED[name]
    except KeyError:
        raise KgalignError(f"no shipped adapter named {name!r} (shipped: {', '.join(SHIPPED)})") from None


def resolve_adapter(value: str | Path | None) -> str | None:
    """:func:`adapter_folder` of ``value``; None for no adapter (None or empty)."""
    if value is None or value == "":
        return None
    return adapter_folder(value)


def adapter_folder(value: str | Path) -> str:
    """An adapter folder from ``--adapter``: an existing folder as given, else a shipped adapter's name.

    A folder of that name in the working directory wins over the shipped adapter; a value
    that is neither stops with one line.
    """
    path = Path(value)
    if path.is_dir():
        return str(path)
    if str(value) in SHIPPED:
        return str(shipped_adapter(str(value)))
    raise KgalignError(f"{value}: adapter folder not found (and not a shipped adapter: {', '.join(SHIPPED)})")
