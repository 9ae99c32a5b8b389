"""Gold links and the metrics of a run: precision, recall, F1, Hits@k, MRR.

- :mod:`kgalign.evaluation.metrics` reads gold files and scores links and rankings
  (:func:`~kgalign.evaluation.metrics.score_alignment`: a run's figures, seed links left out);
- :mod:`kgalign.evaluation.runs` scores a finished run from its output folder
  (:func:`~kgalign.evaluation.runs.score_run`), against any gold file.
"""
