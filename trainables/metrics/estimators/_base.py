"""The GC estimator interface and the Jacobian products every estimator is built from.

An estimator turns ``fn`` and a batch ``x`` into per-sample estimates of ``||∂fn(x_b)/∂x_b||_F²``
(SPEC 2.2). All of them work on one batched forward pass and the *sum-over-batch* trick: for a
per-sample independent ``fn``, the vector-Jacobian product of ``Σ_b u_b · fn(x)_b`` with respect
to the batch is ``u_bᵀ J_b`` in row ``b``, so one backward pass gives one Jacobian product for
every sample at once, and ``torch.autograd.grad(..., is_grads_batched=True)`` vectorises it over
a chunk of cotangents. Forward (Jacobian-vector) products are taken by the double-VJP trick
(``J t`` is the VJP of ``u ↦ Jᵀu``), which, unlike ``torch.func.jvp``, also runs on a model in
train mode (BatchNorm updating its buffers) and keeps the graph for double backprop.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from trainables.metrics.estimators import ESTIMATORS

EmbeddingFn = Callable[[Tensor], Tensor]


class Linearization:
    """``fn`` at ``x``: one forward pass, then batched Jacobian products of every sample.

    Args:
        fn: maps a batch ``(B, ...)`` to ``(B, p)``.
        x: the batch, ``(B, ...)``.
        create_graph: keep the graph of the products, so that a function of them can be
            differentiated with respect to the parameters of ``fn`` (double backprop).
    """

    def __init__(self, fn: EmbeddingFn, x: Tensor, *, create_graph: bool = False) -> None:
        self.create_graph = create_graph
        with torch.enable_grad():
            self.x = x.detach().requires_grad_(True)
            self.y = fn(self.x)
        if self.y.dim() != 2 or self.y.shape[0] != x.shape[0]:
            raise ValueError(f"fn must map (B, ...) to (B, p); got {tuple(self.y.shape)}")
        self._transpose: tuple[Tensor, Tensor] | None = None

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    @property
    def in_dim(self) -> int:
        return self.x[0].numel()

    @property
    def out_dim(self) -> int:
        return self.y.shape[1]

    def vjp(self, cotangents: Tensor) -> Tensor:
        """Rows ``u_kbᵀ J_b`` for cotangents ``(K, B, p)``; returns ``(K, B, d)``."""
        (rows,) = torch.autograd.grad(
            self.y,
            self.x,
            cotangents.to(self.y.dtype),
            retain_graph=True,
            create_graph=self.create_graph,
            is_grads_batched=True,
        )
        return rows.flatten(2)

    def jvp(self, tangents: Tensor) -> Tensor:
        """Columns ``J_b t_kb`` for tangents ``(K, B, d)``; returns ``(K, B, p)``."""
        if self._transpose is None:  # u ↦ Jᵀu, linear in u; built once
            with torch.enable_grad():
                u = torch.zeros_like(self.y, requires_grad=True)
                (ju,) = torch.autograd.grad(self.y, self.x, u, create_graph=True)
            self._transpose = (u, ju)
        u, ju = self._transpose
        tangents = tangents.to(ju.dtype).reshape(tangents.shape[:2] + ju.shape[1:])
        (cols,) = torch.autograd.grad(
            ju,
            u,
            tangents,
            retain_graph=True,
            create_graph=self.create_graph,
            is_grads_batched=True,
        )
        return cols


def squared_norms(products: Tensor) -> Tensor:
    """``Σ_k ||products[k, b]||²`` per sample, accumulated in float64: ``(K, B, n) -> (B,)``."""
    return products.square().sum(dim=(0, 2), dtype=torch.float64)


def basis_sq_norms(
    product: Callable[[Tensor], Tensor],
    index: Tensor,
    size: int,
    *,
    chunk_size: int,
    dtype: torch.dtype,
    valid: Tensor | None = None,
) -> Tensor:
    """``Σ_j ||product(e_{index[b, j]})_b||²`` per sample ``b``, ``chunk_size`` products per pass.

    Each sample gets its own basis vectors (the sum-over-batch trick allows any cotangent per
    sample), so random subsets can be drawn independently per sample at no extra cost.

    Args:
        product: ``lin.vjp`` (``size = p``) or ``lin.jvp`` (``size = d``).
        index: ``(B, m)`` coordinates per sample.
        size: length of a basis vector.
        chunk_size: products per batched pass.
        dtype: dtype of the basis vectors (the model's).
        valid: optional ``(B, m)`` bool; a False entry contributes nothing (padding).
    """
    batch, count = index.shape
    total = torch.zeros(batch, dtype=torch.float64, device=index.device)
    for start in range(0, count, chunk_size):
        idx = index[:, start : start + chunk_size].T  # (K, B)
        dirs = torch.zeros(*idx.shape, size, dtype=dtype, device=idx.device)
        dirs.scatter_(2, idx[..., None], 1.0)  # (K, B, size)
        if valid is not None:
            dirs = dirs * valid[:, start : start + chunk_size].T[..., None]
        total = total + squared_norms(product(dirs))
    return total


@dataclasses.dataclass(frozen=True, kw_only=True)
class GCEstimator(abc.ABC):
    """An unbiased estimator of per-sample squared Jacobian Frobenius norms.

    Subclasses are frozen dataclasses whose fields are the estimator's options; a field
    with ``metadata={"label": False}`` (e.g. ``chunk_size``) changes cost, not the estimate,
    and is left out of :meth:`label`. Register each in ``ESTIMATORS`` under its ``name``.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def per_sample(
        self,
        fn: EmbeddingFn,
        x: Tensor,
        *,
        create_graph: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Per-sample estimates ``(B,)`` in float64, each unbiased for its ``||J_b||_F²``."""

    def label(self) -> str:
        """Canonical name with every option that defines the estimate, keys sorted."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown = {k: v for k, v in values.items() if self._field(k).metadata.get("label", True)}
        if not shown:
            return self.name
        return f"{self.name}(" + ",".join(f"{k}={shown[k]}" for k in sorted(shown)) + ")"

    def _field(self, name: str) -> dataclasses.Field[Any]:
        return next(f for f in dataclasses.fields(self) if f.name == name)


def chunk_field(default: int = 32) -> Any:
    """The ``chunk_size`` option: Jacobian products per batched backward pass (cost only)."""
    return dataclasses.field(default=default, metadata={"label": False})


def check_positive(**values: float) -> None:
    """Raise a ValueError naming the first option that is not > 0."""
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"GC estimator option {key} must be > 0, got {value!r}")


def make_estimator(name: str, options: dict[str, Any] | None = None) -> GCEstimator:
    """The registered estimator ``name`` with ``options``; unknown options are errors."""
    cls = ESTIMATORS.get(name)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options or {}) - known)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for GC estimator {name!r}; known: {sorted(known)}"
        )
    return cls(**(options or {}))
