"""PCGrad (Yu et al., 2020): multi-task gradients without the tug of war."""
from __future__ import annotations

import random
from typing import Sequence

import torch


def project_conflicting(grads: Sequence[torch.Tensor], rng: random.Random | None = None) -> list[torch.Tensor]:
    """For each task gradient, remove its component along every other task gradient it conflicts
    with (negative dot product), visiting the others in random order.  Returns new tensors."""
    rng = rng or random.Random(0)
    projected = []
    for i, g in enumerate(grads):
        g = g.clone()
        others = [j for j in range(len(grads)) if j != i]
        rng.shuffle(others)
        for j in others:
            other = grads[j]
            dot = torch.dot(g, other)
            if dot < 0:
                g = g - dot / (other.norm() ** 2 + 1e-20) * other
        projected.append(g)
    return projected


class PCGrad:
    """Wraps an optimizer: ``step(losses)`` back-propagates each task's loss, projects, sums, steps."""

    def __init__(self, optimizer: torch.optim.Optimizer, seed: int = 0) -> None:
        self.optimizer = optimizer
        self.rng = random.Random(seed)

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"] if p.requires_grad]

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, losses: Sequence[torch.Tensor]) -> None:
        params = self.params
        flat = []
        for k, loss in enumerate(losses):
            grads = torch.autograd.grad(loss, params, retain_graph=k < len(losses) - 1, allow_unused=True)
            flat.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                   for g, p in zip(grads, params)]))
        merged = torch.stack(project_conflicting(flat, self.rng)).sum(dim=0)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = merged[offset:offset + n].view_as(p).clone()
            offset += n

    def step(self, losses: Sequence[torch.Tensor]) -> None:
        self.zero_grad()
        self.backward(losses)
        self.optimizer.step()


def shared_representation_step(optimizer: torch.optim.Optimizer, z: torch.Tensor | tuple[torch.Tensor, ...], heads,
                               loss_fn, rng: random.Random) -> list[torch.Tensor]:
    """PCGrad at the shared representation ``z``: one backward pass through the trunk, not one per task.

    Each task's gradient with respect to ``z`` (cheap: it only crosses that task's head) is
    projected off the others it conflicts with; the sum is back-propagated through the trunk.
    Head parameters, which no other task shares, get their own task's gradient.
    ``z`` may be a tuple of tensors (graph vector, node states, …): their gradients are
    concatenated into one vector per task before projecting.
    ``heads(z) -> predictions``; ``loss_fn(predictions) -> per-task losses``.
    """
    optimizer.zero_grad(set_to_none=True)
    parts = z if isinstance(z, tuple) else (z,)
    detached = tuple(t.detach().requires_grad_(True) for t in parts)
    losses = loss_fn(heads(detached if isinstance(z, tuple) else detached[0]))
    per_task = []
    for loss in losses:
        grads = torch.autograd.grad(loss, detached, retain_graph=True, allow_unused=True)
        per_task.append(torch.cat([(g if g is not None else torch.zeros_like(t)).reshape(-1)
                                   for g, t in zip(grads, detached)]))
    torch.stack(losses).sum().backward()  # head parameters
    merged = torch.stack(project_conflicting(per_task, rng)).sum(dim=0)
    chunks = torch.split(merged, [t.numel() for t in parts])
    torch.autograd.backward(parts, [chunk.view_as(t) for chunk, t in zip(chunks, parts)])
    optimizer.step()
    return losses
