"""The reader's learned combination and decision: which candidate sentence answers, and whether any
does, from the signals the engine measures, with weights fitted on data instead of set by hand.

- Ranking: a conditional logit over a question's candidate sentences (a softmax of a linear score
  of their features), fitted so that the sentences holding the answer take the probability.
- Decision: a logistic regression over what the ranking leaves (the best score, its margin and
  share, the best passage's relevance...), fitted on answerable questions answered right against
  those answered wrong and questions asked of documents that do not hold their answer. Its output
  is the answer's confidence; below ``threshold`` the engine declines.

Inference is numpy on a JSON file of weights (reader-decide.json beside this module); fitting
(``fit``) uses torch's L-BFGS and runs only in ``csto-qa train-reader``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# A candidate sentence's signals (extract.Extractor.candidates computes them).
FEATURES = (
    "alone",  # reader similarity of the sentence alone to the question
    "context",  # the same for the sentence after the one before it (through its translation across languages)
    "coverage",  # share of the question's words (rarity-weighted) the sentence or its title holds
    "typed_when", "typed_count", "typed_where",  # holds a span of the type asked for
    "fragment",  # a caption, a heading: no full sentence
    "passage",  # similarity of its passage to the question
)
# What the decision reads of a question's ranked candidates.
DECISION = ("top", "margin", "share", "alone", "context", "relevance", "cross_lingual", "untyped", "known")
SHIPPED = Path(__file__).with_name("reader-decide.json")


class ModelError(Exception):
    pass


@dataclass
class Decider:
    weights: np.ndarray  # one per FEATURES
    mean: np.ndarray
    scale: np.ndarray
    decision: np.ndarray  # one per DECISION
    bias: float
    d_mean: np.ndarray
    d_scale: np.ndarray
    threshold: float
    info: dict = field(default_factory=dict)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The candidates' linear scores (log-odds of answering, up to a constant per question)."""
        return ((features - self.mean) / self.scale) @ self.weights

    def confidence(self, decision: np.ndarray) -> float:
        z = float(((decision - self.d_mean) / self.d_scale) @ self.decision + self.bias)
        return 1.0 / (1.0 + math.exp(-z)) if z > -50 else 0.0

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "weights": self.weights.tolist(), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "decision_features": list(DECISION), "decision": self.decision.tolist(),
                "bias": self.bias, "d_mean": self.d_mean.tolist(), "d_scale": self.d_scale.tolist(),
                "threshold": self.threshold, "info": self.info}

    def save(self, path: Path = SHIPPED) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def load(path: Path = SHIPPED) -> Decider:
    from .adapter import REBUILD

    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        if tuple(d["features"]) != FEATURES or tuple(d["decision_features"]) != DECISION:
            raise ValueError("its features are not this engine's")
        arr = lambda k: np.asarray(d[k], dtype=np.float64)  # noqa: E731
        out = Decider(arr("weights"), arr("mean"), arr("scale"), arr("decision"), float(d["bias"]),
                      arr("d_mean"), arr("d_scale"), float(d["threshold"]), d.get("info", {}))
    except FileNotFoundError:
        raise ModelError(f"the reader's decision file {path} is missing: rebuild it with `{REBUILD}`") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"the reader's decision file {path} is damaged ({exc}): rebuild it with `{REBUILD}`") from None
    if not all(np.isfinite(a).all() for a in (out.weights, out.decision, out.scale, out.d_scale)):
        raise ModelError(f"the reader's decision file {path} is damaged (not finite): rebuild it with `{REBUILD}`")
    return out


def untrained() -> Decider:
    """A decider that ranks by the reader's two similarities and never declines: what the engine
    reads with while the decision is being fitted (reader/fit.py)."""
    weights = np.array([float(name in ("alone", "context")) for name in FEATURES])
    ones = np.ones(len(FEATURES))
    return Decider(weights, np.zeros(len(FEATURES)), ones, np.zeros(len(DECISION)), 0.0, np.zeros(len(DECISION)),
                   np.ones(len(DECISION)), 0.0)


# --- fitting ---------------------------------------------------------------------------------


@dataclass
class Sample:
    """One question as the engine read it: its candidates' features and which hold the answer, and
    its question-level signals."""
    features: np.ndarray  # [n, FEATURES]
    right: np.ndarray  # [n] bool: the candidate holds a gold answer
    extra: dict  # relevance, cross_lingual, untyped-relevant flags: decision_row's inputs
    answerable: bool
    group: str = ""  # where it comes from (piaf-fr, csto...), for the report


def decision_row(scores: np.ndarray, features: np.ndarray, order: np.ndarray, extra: dict) -> np.ndarray:
    """The decision's inputs for a question whose candidates scored ``scores`` (``order``: best first)."""
    best = order[0]
    second = scores[order[1]] if len(order) > 1 else scores[best] - 5.0
    z = scores - scores[best]
    share = 1.0 / float(np.exp(z).sum())
    f = dict(zip(FEATURES, features[best]))
    return np.array([scores[best], scores[best] - second, share, f["alone"], f["context"], extra["relevance"],
                     float(extra["cross_lingual"]), float(extra["asks_typed"] and not extra["typed"][best]),
                     extra["known"]], dtype=np.float64)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0)
    scale = x.std(0)
    return mean, np.where(scale > 1e-9, scale, 1.0)


def fit(samples: list[Sample], max_false_abstention: float = 0.04, l2: float = 1e-3, drop: tuple[str, ...] = (),
        log=print) -> Decider:
    """Fits the ranking on the answerable samples with a right candidate, then the decision on all,
    and sets the threshold to the highest whose false abstention on the samples stays within
    ``max_false_abstention``. ``drop``: features held at their mean (an ablation)."""
    import torch

    torch.manual_seed(0)
    every = np.concatenate([s.features for s in samples])
    mean, scale = _standardise(every)
    keep = torch.tensor([name not in drop for name in FEATURES], dtype=torch.float64)
    ranked = [s for s in samples if s.answerable and s.right.any()]
    # the candidates of every question padded to one tensor [questions, candidates, features]
    width = max(len(s.right) for s in ranked)
    x = torch.zeros(len(ranked), width, len(FEATURES), dtype=torch.float64)
    valid = torch.zeros(len(ranked), width, dtype=torch.bool)
    pos = torch.zeros(len(ranked), width, dtype=torch.bool)
    for i, s in enumerate(ranked):
        x[i, : len(s.right)] = torch.from_numpy((s.features - mean) / scale)
        valid[i, : len(s.right)] = True
        pos[i, : len(s.right)] = torch.from_numpy(s.right.astype(bool))
    w = torch.zeros(len(FEATURES), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def rank_loss():
        opt.zero_grad()
        logp = torch.log_softmax((x @ (w * keep)).masked_fill(~valid, -1e9), 1)
        loss = -torch.logsumexp(logp.masked_fill(~pos, -1e9), 1).mean() + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(rank_loss)
    weights = (w * keep).detach().numpy()
    rows, labels = [], []
    for s in samples:
        scores = ((s.features - mean) / scale) @ weights
        order = np.argsort(-scores, kind="stable")
        rows.append(decision_row(scores, s.features, order, s.extra))
        labels.append(bool(s.answerable and s.right[order[0]]))
    d = np.stack(rows)
    d_mean, d_scale = _standardise(d)
    dx = torch.from_numpy((d - d_mean) / d_scale)
    dy = torch.tensor(labels, dtype=torch.float64)
    v = torch.zeros(len(DECISION) + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([v], max_iter=500, line_search_fn="strong_wolfe")

    def decide_loss():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(dx @ v[:-1] + v[-1], dy) + l2 * (v[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(decide_loss)
    v = v.detach().numpy()
    conf = 1 / (1 + np.exp(-(((d - d_mean) / d_scale) @ v[:-1] + v[-1])))
    answerable = np.array([s.answerable for s in samples])
    threshold = 0.0
    for t in np.unique(np.round(conf[answerable], 4)):
        if (conf[answerable] < t).mean() <= max_false_abstention:
            threshold = float(t)
    model = Decider(weights, mean, scale, v[:-1], float(v[-1]), d_mean, d_scale, threshold)
    report = fit_report(model, samples)
    model.info = {"samples": len(samples), "answerable": int(answerable.sum()), "report": report}
    log(f"decision fitted on {len(samples)} questions; threshold {threshold:.3f}; {json.dumps(report)}")
    return model


def fit_report(model: Decider, samples: list[Sample]) -> dict:
    """Per group: right top candidate, answered right, false abstention, unanswerable declined."""
    out: dict[str, dict] = {}
    for s in samples:
        scores = model.scores(s.features)
        order = np.argsort(-scores, kind="stable")
        conf = model.confidence(decision_row(scores, s.features, order, s.extra))
        g = out.setdefault(s.group, {"n": 0, "right_top": 0, "answered_right": 0, "declined": 0, "unanswerable": 0,
                                     "unanswerable_declined": 0})
        if s.answerable:
            g["n"] += 1
            g["right_top"] += int(s.right[order[0]])
            g["answered_right"] += int(s.right[order[0]] and conf >= model.threshold)
            g["declined"] += int(conf < model.threshold)
        else:
            g["unanswerable"] += 1
            g["unanswerable_declined"] += int(conf < model.threshold)
    return out
