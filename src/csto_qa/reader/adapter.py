"""The reader's weights: low-rank adapters (LoRA) on every linear layer of the bundled e5 encoder,
shipped as one small file and merged into the converted model at set-up, as the conversion is.

A layer's weight becomes W + (alpha / rank) * B @ A, with A [rank, in] and B [out, rank]: what
fine-tuning changed, in 2 % of the model's size. The merged folder is a converted-model folder like
the base one (the same tokenizer and prompts), cached beside it under the adapter's digest, so the
runtimes (onnx.py, torch.py) read it unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

# the linear layers adapted in each of the encoder's layers (transformers' BertModel names)
TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense")
SHIPPED = Path(__file__).with_name("reader-lora.safetensors")
ENV = "CSTO_QA_READER"  # another adapter file (a checkpoint, say) in place of the shipped one
REBUILD = "csto-qa train-reader"


def path() -> Path:
    return Path(os.environ[ENV]).expanduser() if os.environ.get(ENV) else SHIPPED


class AdapterError(Exception):
    """The weights file is missing or damaged; the message names the command that rebuilds it."""


def save(path: Path, tensors: dict[str, np.ndarray], meta: dict) -> None:
    from safetensors.numpy import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: np.ascontiguousarray(v, dtype=np.float16) for k, v in tensors.items()}, str(tmp),
              metadata={"csto_qa": json.dumps(meta, ensure_ascii=False)})
    os.replace(tmp, path)


def read(file: Path | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The adapter's matrices (float32) and what it records of its training."""
    from safetensors import SafetensorError, safe_open

    file = Path(file) if file else path()
    if not file.is_file():
        raise AdapterError(f"the reader's weights file {file} is missing: rebuild it with `{REBUILD}`")
    try:
        with safe_open(str(file), framework="numpy") as f:
            meta = json.loads(f.metadata()["csto_qa"])
            tensors = {k: f.get_tensor(k).astype(np.float32) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise AdapterError(f"the reader's weights file {file} is damaged ({str(exc).splitlines()[0][:80]}): "
                           f"rebuild it with `{REBUILD}`") from None
    if not all(np.isfinite(t).all() for t in tensors.values()) or not tensors:
        raise AdapterError(f"the reader's weights file {file} is damaged (no finite weights): rebuild it with `{REBUILD}`")
    return tensors, meta


def digest(file: Path) -> str:
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest()[:12]
    except OSError:
        raise AdapterError(f"the reader's weights file {file} is missing: rebuild it with `{REBUILD}`") from None


def merge(state: dict[str, np.ndarray], tensors: dict[str, np.ndarray], meta: dict) -> dict[str, np.ndarray]:
    """``state`` (BertModel names) with each adapted weight replaced by W + scale * B @ A."""
    scale = float(meta["alpha"]) / float(meta["rank"])
    out = dict(state)
    for name in {k.rsplit(".lora_", 1)[0] for k in tensors}:
        key = f"{name}.weight"
        a, b = tensors.get(f"{name}.lora_a"), tensors.get(f"{name}.lora_b")
        if key not in state or a is None or b is None or (b @ a).shape != state[key].shape:
            raise AdapterError(f"the reader's weights do not fit the model ({name}): rebuild them with `{REBUILD}`")
        out[key] = (state[key] + scale * (b @ a)).astype(np.float32)
    return out


def merged_folder(base: Path, file: Path | None = None, log=print) -> Path:
    """The converted model with the adapter merged in, written once beside ``base`` (aside, then
    renamed into place: a crash never leaves half a folder)."""
    from safetensors.numpy import load_file, save_file

    base = Path(base)
    file = Path(file) if file else path()
    out = base.with_name(f"{base.name}-reader-{digest(file)}")
    if (out / "reader.json").is_file():
        return out
    tensors, meta = read(file)
    log(f"merging the reader's weights into the model in {out} (once)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=base.parent))
    try:
        for item in base.iterdir():
            if item.name in ("model.safetensors", "onnx"):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        state = merge(load_file(str(base / "model.safetensors")), tensors, meta)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "reader.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        try:
            os.replace(tmp, out)
        except OSError:  # another process merged it meanwhile
            if not (out / "reader.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
