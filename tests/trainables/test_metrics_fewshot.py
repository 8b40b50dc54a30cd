"""Few-shot NCC: seeded episodes, against a per-episode loop, and known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainables.metrics import fewshot_ncc, sample_episodes

ARGS = {"ways": 3, "shots": 2, "queries": 4, "episodes": 50}


def dataset(seed: int = 0, classes: int = 6, n_per: int = 9, dim: int = 4):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat(n_per)[torch.randperm(classes * n_per, generator=gen)]
    centres = torch.randn(classes, dim, dtype=torch.float64, generator=gen)
    return centres[labels] + torch.randn(
        len(labels), dim, dtype=torch.float64, generator=gen
    ), labels


def test_episodes_are_deterministic_for_a_seed_and_well_formed() -> None:
    _, labels = dataset()
    support, query = sample_episodes(labels, seed=3, **ARGS)
    again_s, again_q = sample_episodes(labels, seed=3, **ARGS)
    assert torch.equal(support, again_s) and torch.equal(query, again_q)
    assert support.shape == (50, 3, 2) and query.shape == (50, 3, 4)
    other, _ = sample_episodes(labels, seed=4, **ARGS)
    assert not torch.equal(support, other)
    both = torch.cat([support, query], dim=2)  # (E, ways, shots + queries)
    way_labels = labels[both]
    assert (way_labels == way_labels[..., :1]).all()  # one class per way
    assert all(len(set(w[:, 0].tolist())) == 3 for w in way_labels)  # distinct classes
    assert all(len(set(e.flatten().tolist())) == 18 for e in both)  # no sample twice


def test_classes_with_too_few_samples_are_excluded_or_refused() -> None:
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 5 + [3] * 6)
    support, query = sample_episodes(labels, seed=0, **ARGS)
    assert 2 not in set(labels[torch.cat([support, query], dim=2)].flatten().tolist())
    with pytest.raises(ValueError, match="only 3 of 4 classes"):
        sample_episodes(labels, seed=0, **{**ARGS, "ways": 4})


def test_accuracy_matches_a_per_episode_loop_and_ignores_the_embedding_for_episodes() -> None:
    emb, labels = dataset()
    support, query = sample_episodes(labels, seed=7, **ARGS)
    accs = []
    for s, q in zip(support, query, strict=True):
        centres = emb[s].mean(dim=1).numpy()  # (ways, p)
        correct = [
            int(np.argmin(((centres - emb[i].numpy()) ** 2).sum(axis=1)) == w)
            for w in range(3)
            for i in q[w].tolist()
        ]
        accs.append(np.mean(correct))
    mean, half = fewshot_ncc(emb, labels, seed=7, **ARGS)
    assert mean == pytest.approx(np.mean(accs), abs=1e-12)
    assert half == pytest.approx(1.96 * np.std(accs, ddof=1) / math.sqrt(50), rel=1e-10)
    assert fewshot_ncc(2 * emb + 1, labels, seed=7, **ARGS) == (mean, half)
    assert fewshot_ncc(emb + 1e7, labels, seed=7, **ARGS) == (mean, half)  # far from 0


def test_perfectly_separated_classes_give_accuracy_one_with_zero_ci() -> None:
    labels = torch.arange(6).repeat(9)
    noise = 1e-3 * torch.randn(54, 6, dtype=torch.float64)
    emb = 1e3 * torch.eye(6, dtype=torch.float64)[labels] + noise
    assert fewshot_ncc(emb, labels, **ARGS) == (1.0, 0.0)


@pytest.mark.parametrize(("cls", "members"), [(0, range(5)), (1, range(5, 14))])
def test_episode_samples_are_uniform_over_ordered_support_query_pairs(
    cls: int, members: range
) -> None:
    labels = torch.tensor([0] * 5 + [1] * 9)
    support, query = sample_episodes(labels, ways=2, shots=1, queries=1, episodes=4000, seed=0)
    e, w = (labels[support[:, :, 0]] == cls).nonzero().T  # the way of class cls, per episode
    first = members.start
    pairs = torch.stack([support[e, w, 0], query[e, w, 0]], dim=1) - first
    n = len(members)
    counts = torch.zeros(n, n).index_put_(tuple(pairs.T), torch.ones(len(pairs)), accumulate=True)
    assert counts.diagonal().sum() == 0  # support and query are never the same sample
    expected = 4000 / (n * (n - 1))
    off_diagonal = counts[~torch.eye(n, dtype=torch.bool)]
    assert ((off_diagonal - expected).abs() < 5 * expected**0.5).all(), counts
