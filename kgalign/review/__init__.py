"""Stage 7, log and review: votes.jsonl, `kgalign inspect`, the HTML report and reviewers' corrections."""
