"""LLM judges: one interface (:class:`Judge`), several backends found by name."""

from kgalign.judging.base import JUDGES, Answer, Judge, make_judge, register_judge
from kgalign.judging.prompt import Question, parse_answer

__all__ = ["JUDGES", "Answer", "Judge", "Question", "make_judge", "parse_answer", "register_judge"]
