"""One optimiser step: a batch from the mixture, the losses, the gradient and its norm, and a stop
at the first non-finite loss or gradient, before the optimiser can write it into the weights."""
from __future__ import annotations

import math

import torch

from .cli import clip_norm
from .losses import charbonnier, gradient_loss, motion_loss


class NonFiniteLoss(ValueError):
    """The loss or its gradient is NaN or inf: the run stops with the weights of the step before."""


def _grad_norm(params, bound: float) -> torch.Tensor:
    """The gradients' total norm, clipped to ``bound`` (inf: measured only, nothing changed)."""
    if math.isinf(bound):
        return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    return torch.nn.utils.clip_grad_norm_(params, bound)


def _all_finite(values, world: int, device) -> bool:
    """Whether every value is finite on every rank (one small all-reduce under DDP, so that all
    ranks stop at the same step)."""
    bad = torch.tensor([0.0 if all(math.isfinite(v) for v in values) else 1.0], device=device)
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    return float(bad) == 0.0


def _loss(state, net, batch, args, amp: bool, device):
    """The training loss of ``batch``; the frame average's loss on it goes to the image window."""
    (i1, i2, i3), truth = batch
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        out, motion = net(i1, i3)
    loss = charbonnier(out, i2, args.eps)
    with torch.no_grad():  # the blend to beat, on the same batch
        state.image_window.append([float(loss), float(charbonnier((i1 + i3) / 2, i2, args.eps))])
    if args.grad_loss > 0:
        loss = loss + args.grad_loss * gradient_loss(out, i2)
    if motion is not None and truth is not None:
        k = truth["motion"].shape[0]
        scale = max(1.0, args.warp_max_motion)
        loss = loss + args.aux_motion * motion_loss(motion[:k], truth["motion"], truth["valid"], scale)
    elif motion is not None:
        loss = loss + 0.0 * motion.sum()  # no truth in this batch: the head still joins the graph (DDP)
    return loss


def train_step(state, net, sampler, args, device, amp: bool, memory_format, world: int = 1) -> float:
    """One step on ``state`` (``state.TrainingState``) through ``net`` (the training net, or its
    DDP wrapper); returns the loss. Raises ``NonFiniteLoss`` before the optimiser step when the
    loss or the gradient norm is not finite on any rank."""
    (i1, i2, i3), truth = sampler.batch(args.batch_size, state.data_gen, device)
    i1, i3 = (x.contiguous(memory_format=memory_format) for x in (i1, i3))
    loss = _loss(state, net, ((i1, i2, i3), truth), args, amp, device)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = _grad_norm(list(state.train_net.parameters()), clip_norm(args))
    value = float(loss.detach())
    if not _all_finite((value, float(norm)), world, device):
        raise NonFiniteLoss(f"step {state.step + 1}: the loss is {value:g} and the gradient norm {float(norm):g}; "
                            f"training stopped before the optimiser step, so no weight, checkpoint or export holds "
                            f"it (lower --lr, now {args.lr:g}, or --clip-grad, and resume from the last checkpoint)")
    state.optimizer.step()
    state.schedule.after_step()
    state.step += 1
    return value
