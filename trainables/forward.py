"""Forward passes over whole splits in chunks: embeddings, logits, and the pooled outputs
of the inner layers a study measures, all from one pass per chunk."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainables.models import EmbeddingClassifier

EVAL_BATCH = 1024  # forward-pass chunk for embedding whole splits


@torch.no_grad()
def embed_all(model: EmbeddingClassifier, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings (N, p) and logits (N, C) of ``x`` in chunks, in float32."""
    feats, logits = [], []
    for start in range(0, len(x), EVAL_BATCH):
        f = model.embed(x[start : start + EVAL_BATCH]).float()  # (b, p)
        feats.append(f)
        logits.append(model.head(f))  # (b, C)
    return torch.cat(feats), torch.cat(logits)


@dataclass(frozen=True)
class Embedded:
    """A split through the model: embeddings ``(N, p)``, logits ``(N, C)``, and the pooled
    outputs ``(n, p_k)`` of the inner layers measured, by 1-based layer index."""

    emb: torch.Tensor
    logits: torch.Tensor
    inner: dict[int, torch.Tensor]


@torch.no_grad()
def embed_layers(
    model: EmbeddingClassifier,
    x: torch.Tensor,
    layers: list[int],
    *,
    rows: torch.Tensor | None = None,
) -> Embedded:
    """:func:`embed_all` and the outputs of the inner ``layers`` (those before the last), from
    one forward pass per chunk; of the inner layers only the sorted ``rows`` are kept (all
    by default). Without inner layers it is :func:`embed_all`."""
    last = len(model.layer_names())
    inner = [k for k in layers if k < last]
    if not inner:
        return Embedded(*embed_all(model, x), {})
    feats, logits, kept = [], [], {k: [] for k in inner}
    for start in range(0, len(x), EVAL_BATCH):
        outputs = model.layer_outputs(x[start : start + EVAL_BATCH])  # [(b, p_k)]
        f = outputs[-1].float()  # (b, p): embed()'s value, op for op
        feats.append(f)
        logits.append(model.head(f))  # (b, C)
        take = _rows_in(rows, start, len(f))
        for k in inner:
            out = outputs[k - 1].float()
            kept[k].append(out if take is None else out[take])
    return Embedded(torch.cat(feats), torch.cat(logits), {k: torch.cat(v) for k, v in kept.items()})


def _rows_in(rows: torch.Tensor | None, start: int, size: int) -> torch.Tensor | None:
    """The sorted ``rows`` that fall in ``[start, start + size)``, less ``start``."""
    if rows is None:
        return None
    lo, hi = torch.searchsorted(rows, torch.tensor([start, start + size])).tolist()
    return rows[lo:hi] - start
