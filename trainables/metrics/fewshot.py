"""Few-shot transfer by nearest class centre on frozen embeddings (SPEC 2.5).

Protocol [ours where the paper is silent]: each episode draws ``ways`` classes, then
``shots`` support and ``queries`` query samples per class without replacement; the centre
of a class is the mean of its support embeddings and a query is assigned to the nearest
centre (Euclidean). Episodes depend only on the labels and the seed, so every checkpoint
and every trial is evaluated on the same episodes (paired comparisons).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence


def sample_episodes(
    labels: Tensor, *, ways: int, shots: int, queries: int, episodes: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Indices into ``labels`` for ``episodes`` few-shot episodes, drawn on a seeded CPU
    generator (the same for a given seed and labels, whatever the embeddings or device).

    Only classes with at least ``shots + queries`` samples take part.

    Returns:
        ``support_idx`` ``(E, ways, shots)`` and ``query_idx`` ``(E, ways, queries)``; way
        ``w`` of episode ``e`` is one class in both.

    Raises:
        ValueError: if fewer than ``ways`` classes have enough samples.
    """
    labels = labels.detach().cpu().long()
    need = shots + queries
    classes, counts = labels.unique(return_counts=True)
    eligible = classes[counts >= need]
    if len(eligible) < ways:
        raise ValueError(
            f"few-shot needs {ways} classes with >= shots + queries = {need} samples each; "
            f"only {len(eligible)} of {len(classes)} classes have enough"
        )
    members = pad_sequence(
        [torch.nonzero(labels == c).squeeze(1) for c in eligible.tolist()],
        batch_first=True,
        padding_value=-1,
    )  # (K, M) sample indices of each eligible class, -1 padded
    gen = torch.Generator().manual_seed(seed)
    picked = torch.rand(episodes, len(eligible), generator=gen).argsort(dim=1)[:, :ways]
    sizes = counts[counts >= need][picked]  # (E, ways)
    positions = _random_subsets(sizes.flatten(), need, generator=gen).view(episodes, ways, need)
    chosen = members[picked[..., None], positions]  # (E, ways, need)
    return chosen[..., :shots], chosen[..., shots:]


def _random_subsets(sizes: Tensor, need: int, *, generator: torch.Generator) -> Tensor:
    """For each row ``r``, ``need`` distinct positions in ``[0, sizes[r])`` in uniformly random
    order: Floyd's algorithm (Bentley & Floyd 1987), vectorised over rows, then a shuffle.
    Draws ``2·need`` numbers per row instead of one per class member."""
    u = torch.rand(len(sizes), need, generator=generator, dtype=torch.float64)
    chosen = torch.empty(len(sizes), need, dtype=torch.long)
    for i in range(need):
        high = sizes - need + i  # step i draws from [0, high]; high itself is never taken yet
        t = (u[:, i] * (high + 1)).long()
        taken = (chosen[:, :i] == t[:, None]).any(dim=1)
        chosen[:, i] = torch.where(taken, high, t)
    order = torch.rand(len(sizes), need, generator=generator).argsort(dim=1)
    return chosen.gather(1, order)


EPISODE_CHUNK = 16  # episodes per vectorised step: keeps the gathered embeddings in cache


def fewshot_ncc(
    embeddings: Tensor,
    labels: Tensor,
    *,
    ways: int = 5,
    shots: int = 5,
    queries: int = 15,
    episodes: int = 600,
    seed: int = 0,
) -> tuple[float, float]:
    """Few-shot nearest-class-centre accuracy over seeded episodes (SPEC 2.5).

    Episodes are evaluated together, ``EPISODE_CHUNK`` at a time, in float64.

    Returns:
        ``(mean accuracy, 95% CI half-width)``, the half-width ``1.96·s/√E`` with ``s`` the
        standard deviation of the per-episode accuracies (ddof = 1).
    """
    support, query = sample_episodes(
        labels, ways=ways, shots=shots, queries=queries, episodes=episodes, seed=seed
    )
    acc = torch.cat(
        [
            _episode_accuracy(embeddings.detach(), s, q)
            for s, q in zip(support.split(EPISODE_CHUNK), query.split(EPISODE_CHUNK), strict=True)
        ]
    )  # (E,)
    half = 1.96 * float(acc.std(correction=1)) / math.sqrt(episodes) if episodes > 1 else math.nan
    return float(acc.mean()), half


def _episode_accuracy(embeddings: Tensor, support: Tensor, query: Tensor) -> Tensor:
    """Accuracy of each episode ``(e,)`` from support ``(e, ways, shots)`` and query
    ``(e, ways, queries)`` indices; a query of way ``w`` is right if centre ``w`` is nearest.

    The nearest centre minimises ``||c'||² − 2 (q·c' − o·c') = ||q − c||² − ||q − o||²``, with
    ``c' = c − o`` and ``o`` the mean of some support samples: a large common offset of the
    embeddings cancels in ``c'`` before any product. Products and sums are in float64.
    """
    e, ways, shots = support.shape
    rows = partial(_rows, embeddings)
    origin = rows(support[:, :, 0]).mean(dim=0)  # (p,)
    centres = rows(support).view(e, ways, shots, -1).mean(dim=2) - origin  # (e, ways, p)
    points = rows(query).view(e, ways * query.shape[2], -1)  # (e, ways·queries, p)
    dots = torch.bmm(points, centres.transpose(1, 2)) - (centres @ origin)[:, None, :]
    pred = (centres.square().sum(dim=2)[:, None, :] - 2 * dots).argmin(dim=2)
    truth = torch.arange(ways, device=pred.device).repeat_interleave(query.shape[2])
    return (pred == truth).double().mean(dim=1)


def _rows(embeddings: Tensor, index: Tensor) -> Tensor:
    """``embeddings[index.flatten()]`` in float64: a fast row gather (``index_select``) in the
    embeddings' dtype, then the conversion of the few rows gathered."""
    return embeddings.index_select(0, index.flatten().to(embeddings.device)).double()
