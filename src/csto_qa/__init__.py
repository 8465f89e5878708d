"""csto-qa: extractive, cited question answering over a folder of French or English documents.

Data flows one way: load -> split -> embed -> index, then for each question conversation ->
translate -> retrieve -> extract -> cite; ``QA`` (in qa.py) is the entry point that runs it.
"""

import os

# OpenMP threads (the embedder's, FAISS's) spin while they wait by default: on a 2-core machine
# with anything else running, one query embedding then takes 1.7 s instead of 30 ms.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .qa import QA, QuestionError  # noqa: E402
from .types import Answer, Passage, Result

__all__ = ["QA", "QuestionError", "Answer", "Passage", "Result"]
