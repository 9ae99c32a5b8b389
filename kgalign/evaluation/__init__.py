"""Gold links and the metrics of a run: precision, recall, F1, Hits@k, MRR."""
