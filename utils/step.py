"""One DCGAN training step: D update, then G update."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

STAT_NAMES = ("D_loss", "G_loss", "D(x)", "D(G(z))", "D(G(z))_post")
REAL, FAKE = 1.0, 0.0  # the labels


def bce(scores: Tensor, label: float) -> Tensor:
    """``BCELoss`` (mean) of the discriminator's ``scores`` against one ``label`` for all.

    ``F.binary_cross_entropy`` fails on a NaN score (on CUDA, a device-side assert that ends
    the process); here NaN counts as 0.5, so the step ends and train.py names it (diverged).
    """
    scores = torch.nan_to_num(scores, nan=0.5)
    return F.binary_cross_entropy(scores, torch.full_like(scores, label))


@contextmanager
def frozen(net: nn.Module) -> Iterator[nn.Module]:
    """Compute no weight gradients of ``net`` in the block (gradients still flow through it)."""
    net.requires_grad_(False)
    try:
        yield net
    finally:
        net.requires_grad_(True)


def gan_step(
    netG: nn.Module,
    netD: nn.Module,
    optimizer_G: Optimizer,
    optimizer_D: Optimizer,
    real: Tensor,
    nz: int,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> Tensor:
    """One DCGAN update on a batch of real images ``(N, 1, 28, 28)``: D first, then G.

    The networks run in ``autocast()`` (``--amp``: bfloat16); the losses in float32. Returns
    the five numbers of ``STAT_NAMES`` as one tensor on the batch's device (no GPU wait):
        D_loss: -log D(x) - log(1 - D(G(z))), batch means;
        G_loss: -log D(G(z)) (non-saturating);
        D(x): mean score of the real batch (1 = D is sure they are real);
        D(G(z)): mean score of the fakes before D's update (0.5 = D cannot tell);
        D(G(z))_post: mean score of the same fakes after D's update, as G saw them.
    """
    with autocast():
        fake = netG(torch.randn(real.size(0), nz, 1, 1, device=real.device))

    # (1) D: maximise log D(x) + log(1 - D(G(z))); the fakes are detached so G is untouched.
    # Real and fake images go through D as separate batches, so each has its own BatchNorm
    # statistics, as in the DCGAN reference code.
    optimizer_D.zero_grad(set_to_none=True)
    with autocast():
        d_real, d_fake = netD(real).float(), netD(fake.detach()).float()
    loss_D = bce(d_real, REAL) + bce(d_fake, FAKE)
    loss_D.backward()
    optimizer_D.step()

    # (2) G: maximise log D(G(z)) — fake images labelled real (non-saturating loss,
    # Goodfellow et al. 2014, section 3), scored by the freshly updated D. The gradient flows
    # through D to G, but D's own weight gradients would be thrown away: skip computing them.
    optimizer_G.zero_grad(set_to_none=True)
    with frozen(netD):
        with autocast():
            d_fake_post = netD(fake).float()
        loss_G = bce(d_fake_post, REAL)
        loss_G.backward()
    optimizer_G.step()

    return torch.stack([loss_D, loss_G, d_real.mean(), d_fake.mean(), d_fake_post.mean()]
                       ).detach()
