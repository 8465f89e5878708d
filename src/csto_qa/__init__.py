"""csto-qa: extractive, cited question answering over a folder of French or English documents.

Data flows one way: load -> split -> embed -> index -> retrieve -> extract -> cite;
``QA`` (in qa.py) is the entry point that runs it.
"""

from .qa import QA, QuestionError
from .types import Answer, Passage, Result

__all__ = ["QA", "QuestionError", "Answer", "Passage", "Result"]
