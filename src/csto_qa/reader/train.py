"""`csto-qa train-reader`: fine-tunes the bundled e5 encoder to read, and writes its adapter file.

What it learns: a question's vector close to the vector of the sentence that answers it, and far
from the other sentences of the same article (in-batch contrastive loss, temperature 0.05, every
batch drawn from one article so that its negatives are on-topic). Three forms of passage take
turns, as the engine embeds them: the sentence alone, the sentence after the one before it, and
the whole paragraph (which keeps passage retrieval in tune). Questions are asked in French and,
where Apertium is installed, in English (their machine translation) against the French text.

Only low-rank adapters on the encoder's linear layers are trained (adapter.py); everything else is
frozen. Seeds are fixed; checkpoints are written as training goes, and a run can resume from its
last one. Data: PIAF's train part; the best checkpoint is chosen on PIAF's dev part (top-1 sentence
among its article's, French and English: _dev_score); the test part is only reported.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import adapter, piaf

MAX_TOKENS = {"query": 64, "sentence": 128, "context": 192, "paragraph": 256}
FORMS = (("sentence", 0.4), ("context", 0.35), ("paragraph", 0.25))


@dataclass(frozen=True)
class Settings:
    epochs: int = 3
    rank: int = 16
    alpha: float = 32.0
    lr: float = 5e-4
    warmup: int = 30
    temperature: float = 0.05
    queries: int = 16  # per batch
    paragraphs: int = 16  # candidates for the paragraph form (other articles' paragraphs fill in)
    seed: int = 13
    eval_every: int = 400  # questions trained on between two checkpoints


def _lora(model, rank: int, alpha: float):
    """Wraps each target linear layer in a LoRA layer; returns the trainable modules by name."""
    import torch

    class LoRA(torch.nn.Module):
        def __init__(self, base: torch.nn.Linear):
            super().__init__()
            self.base = base
            self.lora_a = torch.nn.Parameter(torch.empty(rank, base.in_features))
            self.lora_b = torch.nn.Parameter(torch.zeros(base.out_features, rank))
            torch.nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
            self.scale = alpha / rank

        def forward(self, x):
            return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = {}
    for i, layer in enumerate(model.encoder.layer):
        for name in adapter.TARGETS:
            parent_name, _, leaf = name.rpartition(".")
            parent = layer.get_submodule(parent_name)
            lora = LoRA(getattr(parent, leaf))
            setattr(parent, leaf, lora)
            wrapped[f"encoder.layer.{i}.{name}"] = lora
    return wrapped


class Encoder:
    """The model being trained, with the converted folder's tokenizer and prompts."""

    def __init__(self, folder: Path, settings: Settings):
        import torch

        from ..embed.torch import load_model
        from ..embed.transformer import Tokens

        self.torch = torch
        self.tokens = Tokens(folder)
        self.model = load_model(folder)
        self.lora = _lora(self.model, settings.rank, settings.alpha)

    def batch(self, texts: list[str], kind: str, limit: int):
        ids = self.tokens.content(texts, "query" if kind == "query" else "passage")
        ids = [[self.tokens.bos, *row[: limit - 2], self.tokens.eos] for row in ids]
        length = max(map(len, ids))
        arr = np.full((len(ids), length), self.tokens.pad, dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        for r, row in enumerate(ids):
            arr[r, : len(row)] = row
            mask[r, : len(row)] = 1
        return self.torch.from_numpy(arr), self.torch.from_numpy(mask)

    def encode(self, texts: list[str], kind: str):
        ids, mask = self.batch(texts, kind, MAX_TOKENS[kind])
        states = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.torch.nn.functional.normalize(pooled, dim=-1)

    def embed(self, texts: list[str], kind: str, batch: int = 64) -> np.ndarray:
        with self.torch.inference_mode():
            self.model.eval()
            out = [self.encode(texts[i : i + batch], kind).numpy() for i in range(0, len(texts), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), np.float32)

    def adapter_tensors(self) -> dict[str, np.ndarray]:
        out = {}
        for name, module in self.lora.items():
            out[f"{name}.lora_a"] = module.lora_a.detach().numpy().copy()
            out[f"{name}.lora_b"] = module.lora_b.detach().numpy().copy()
        return out

    def load_adapter(self, tensors: dict[str, np.ndarray]) -> None:
        with self.torch.no_grad():
            for name, module in self.lora.items():
                module.lora_a.copy_(self.torch.from_numpy(tensors[f"{name}.lora_a"]))
                module.lora_b.copy_(self.torch.from_numpy(tensors[f"{name}.lora_b"]))


def _queries(art: piaf.Article) -> list[tuple[str, piaf.Question]]:
    out = [(q.text, q) for q in art.questions]
    out += [(q.english, q) for q in art.questions if q.english]
    return out


def batches(articles: list[piaf.Article], settings: Settings, rng: random.Random) -> list[tuple[int, list]]:
    """One epoch's batches: (article index, [(question text, Question)]), each from one article."""
    out = []
    for a, art in enumerate(articles):
        qs = _queries(art)
        rng.shuffle(qs)
        out += [(a, qs[i : i + settings.queries]) for i in range(0, len(qs), settings.queries)]
    rng.shuffle(out)
    return out


def candidates(articles: list[piaf.Article], a: int, group: list, form: str, settings: Settings,
               rng: random.Random) -> tuple[list[str], list[int]]:
    """The passages a batch's questions are scored against, and each question's right one."""
    art = articles[a]
    if form == "paragraph":
        texts = list(art.paragraphs)
        others = [(b, p) for b in rng.sample(range(len(articles)), min(len(articles), settings.paragraphs))
                  if b != a for p in range(len(articles[b].paragraphs))]
        rng.shuffle(others)
        texts += [articles[b].paragraphs[p] for b, p in others[: max(0, settings.paragraphs - len(texts))]]
        return texts, [q.paragraph for _, q in group]
    texts = [art.context(i) if form == "context" else art.sentences[i] for i in range(len(art.sentences))]
    return texts, [q.sentence for _, q in group]


def evaluate(enc: Encoder, articles: list[piaf.Article]) -> dict[str, float]:
    """Top-1 sentence within the gold paragraph, and within the whole article, per language."""
    right = {"fr": [0, 0], "en": [0, 0]}
    n = {"fr": 0, "en": 0}
    for art in articles:
        if not art.questions:
            continue
        sv = enc.embed(art.sentences, "sentence")
        cv = enc.embed([art.context(i) for i in range(len(art.sentences))], "context")
        para = np.asarray(art.sentence_paragraph)
        for lang in ("fr", "en"):
            qs = [q for q in art.questions if lang == "fr" or q.english]
            if not qs:
                continue
            qv = enc.embed([q.text if lang == "fr" else q.english for q in qs], "query")
            scores = qv @ sv.T + qv @ cv.T  # what the engine reads: the sentence alone and in context
            for q, row in zip(qs, scores):
                inside = np.flatnonzero(para == q.paragraph)
                right[lang][0] += int(inside[np.argmax(row[inside])] == q.sentence)
                right[lang][1] += int(np.argmax(row) == q.sentence)
                n[lang] += 1
    out = {}
    for lang in ("fr", "en"):
        if n[lang]:
            out[f"{lang}_paragraph"] = right[lang][0] / n[lang]
            out[f"{lang}_article"] = right[lang][1] / n[lang]
            out[f"{lang}_n"] = n[lang]
    return out


def train(piaf_path: Path, out: Path, checkpoints: Path, settings: Settings, resume: bool, log=print) -> dict:
    import torch

    from .. import translate
    from ..embed import convert

    t0 = time.time()
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    parts = piaf.parts(piaf.load(piaf_path))
    translator = translate.create()
    if translator.available:
        for name in ("train", "dev", "test"):
            piaf.translate_questions(parts[name], translator)
    else:
        log(f"no English questions: {translator.reason}")
    translator.close()
    sizes = {name: {"articles": len(arts), "questions": sum(len(a.questions) for a in arts),
                    "english": sum(bool(q.english) for a in arts for q in a.questions),
                    "sentences": sum(len(a.sentences) for a in arts)} for name, arts in parts.items()}
    log(f"PIAF parts: {json.dumps(sizes)}")
    folder = convert.converted(log=log)
    enc = Encoder(folder, settings)
    params = [p for m in enc.lora.values() for p in (m.lora_a, m.lora_b)]
    optim = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    rng = random.Random(settings.seed)
    epochs = [batches(parts["train"], settings, rng) for _ in range(settings.epochs)]
    total = sum(map(len, epochs))
    schedule = lambda step: min(1.0, (step + 1) / settings.warmup) * max(0.0, (total - step) / total)  # noqa: E731
    forms = [f for f, _ in FORMS]
    weights = [w for _, w in FORMS]
    form_of = [rng.choices(forms, weights)[0] for _ in range(total)]
    checkpoints.mkdir(parents=True, exist_ok=True)
    state_path = checkpoints / "state.json"
    state = {"step": 0, "seen": 0, "curve": []}
    if resume and state_path.is_file():
        state = json.loads(state_path.read_text())
        last = checkpoints / f"step-{state['step']}.safetensors"
        tensors, _ = adapter.read(last)
        enc.load_adapter(tensors)
        opt_path = checkpoints / "optimizer.pt"
        if opt_path.is_file():
            optim.load_state_dict(torch.load(opt_path))
        log(f"resumed at step {state['step']} ({state['seen']} questions seen)")
    else:
        base = evaluate(enc, parts["dev"])
        state["curve"].append({"seen": 0, "step": 0, **base})
        log(f"dev before training: {base}")
    steps = [b for e in epochs for b in e]
    next_eval = (state["seen"] // settings.eval_every + 1) * settings.eval_every
    loss_avg = None
    for step in range(state["step"], total):
        a, group = steps[step]
        texts, target = candidates(parts["train"], a, group, form_of[step], settings, rng)
        for g in optim.param_groups:
            g["lr"] = settings.lr * schedule(step)
        enc.model.train()
        qv = enc.encode([t for t, _ in group], "query")
        pv = enc.encode(texts, form_of[step])
        loss = torch.nn.functional.cross_entropy(qv @ pv.T / settings.temperature, torch.tensor(target))
        optim.zero_grad()
        loss.backward()
        optim.step()
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        state["seen"] += len(group)
        state["step"] = step + 1
        if state["seen"] >= next_eval or step + 1 == total:
            next_eval += settings.eval_every
            dev = evaluate(enc, parts["dev"])
            state["curve"].append({"seen": state["seen"], "step": step + 1, "loss": round(loss_avg, 4), **dev})
            meta = _meta(settings, sizes, state["seen"], dev, time.time() - t0)
            adapter.save(checkpoints / f"step-{step + 1}.safetensors", enc.adapter_tensors(), meta)
            torch.save(optim.state_dict(), checkpoints / "optimizer.pt")
            state_path.write_text(json.dumps(state, indent=1))
            log(f"step {step + 1}/{total}, {state['seen']} questions, loss {loss_avg:.3f}, dev {dev}, "
                f"{time.time() - t0:.0f} s")
    best_step = max((c for c in state["curve"] if c["step"] > 0), key=_dev_score)["step"]
    best = checkpoints / f"step-{best_step}.safetensors"
    tensors, meta = adapter.read(best)
    enc.load_adapter(tensors)
    test = evaluate(enc, parts["test"])
    meta["test"] = test
    meta["curve"] = state["curve"]
    meta["seconds"] = round(time.time() - t0, 1)
    adapter.save(out, tensors, meta)
    meta["step"] = best_step
    log(f"best checkpoint on dev: step {best_step}; PIAF test (top-1 sentence): {test}")
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {meta['seconds']:.0f} s")
    return meta


def _dev_score(point: dict) -> float:
    """What a checkpoint is chosen by: top-1 sentence among all of its article's, French and English.
    The engine picks among the sentences of five passages, which is closer to a whole article than to
    the gold paragraph alone."""
    return point.get("fr_article", 0.0) + point.get("en_article", 0.0)


def _meta(settings: Settings, sizes: dict, seen: int, dev: dict, seconds: float) -> dict:
    return {"rank": settings.rank, "alpha": settings.alpha, "settings": settings.__dict__, "data": sizes,
            "seen": seen, "dev": dev, "seconds": round(seconds, 1),
            "source": "PIAF v1.0 (DINUM/Etalab, MIT), train part by article hash"}


def run(piaf_path: Path, sets_file: Path, work: Path, checkpoints: Path, settings: Settings,
        stages: tuple[str, ...], resume: bool = False, log=print) -> None:
    """The whole recipe: the encoder (its adapter file), then the decision fitted on what the engine
    reads with it (reader-decide.json), then the PIAF test figures."""
    from . import decide, fit

    t0 = time.time()
    if "encoder" in stages:
        train(piaf_path, adapter.SHIPPED, checkpoints, settings, resume, log)
    if "decide" in stages:
        samples = fit.collect(piaf_path, sets_file, work, log)
        decide.fit(samples, log=log).save()
        log(f"wrote {decide.SHIPPED}")
    if "test" in stages:
        report = decide.fit_report(decide.load(), fit.collect_test(piaf_path, work, log))
        log(f"PIAF test, read by the engine: {json.dumps(report)}")
    log(f"train-reader: {time.time() - t0:.0f} s")
