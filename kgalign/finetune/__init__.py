"""Fine-tune the judge with LoRA, from gold links or from a teacher run's decisions.

- :mod:`kgalign.finetune.data` builds training questions exactly as a run asks them;
- :mod:`kgalign.finetune.train` trains, validates and saves the adapter.
- :mod:`kgalign.finetune.extract` cuts a LoRA adapter from a fully fine-tuned model (``kgalign extract-adapter``).

``kgalign finetune`` is the command; ``kgalign run --adapter DIR`` uses the result.
"""

from kgalign.finetune.data import DataConfig, Example, TrainingData, gold_data, teacher_data
from kgalign.finetune.train import FinetuneResult, TrainConfig, finetune

__all__ = ["DataConfig", "Example", "FinetuneResult", "TrainConfig", "TrainingData", "finetune", "gold_data", "teacher_data"]
