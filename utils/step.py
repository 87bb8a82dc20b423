"""One DCGAN training step (D update, then G update), and its faster twin ``FastStep``."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

STAT_NAMES = ("D_loss", "G_loss", "D(x)", "D(G(z))", "D(G(z))_post")
REAL, FAKE = 1.0, 0.0  # the labels


def bce(scores: Tensor, label: float) -> Tensor:
    """``BCELoss`` (mean) of the discriminator's ``scores`` against one ``label`` for all.

    ``F.binary_cross_entropy`` stops with an error on a NaN score (on CUDA a device-side
    assert that ends the process), so NaN scores are counted as 0.5 here: the step then
    finishes, the NaN shows in the returned D(x) / D(G(z)), and train.py stops with the
    step named. For finite scores this is exactly ``F.binary_cross_entropy``.
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

    ``autocast`` makes the context the networks run in (``--amp``: bfloat16 autocast); the
    losses are always computed in float32.

    Returns the five numbers of ``STAT_NAMES`` as one tensor on the batch's device, so that
    a GPU need not wait for them (``stats_to_dict`` reads them back):
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


def stats_to_dict(stats: Tensor) -> dict[str, float]:
    """The numbers of one ``gan_step`` as a dict keyed by ``STAT_NAMES`` (waits for them)."""
    return dict(zip(STAT_NAMES, stats.tolist(), strict=True))


class FastStep:
    """``gan_step`` with the speed-ups that compute the same thing; changes nothing it is given.

    - ``memory_format``: each batch is converted to it (pass the format the networks were
      put in; ``utils.device.fastest_memory_format`` says which is fastest);
    - ``amp``: the networks run under bfloat16 autocast; losses, BatchNorm running
      statistics and the weights stay float32;
    - ``compile``: both networks go through ``torch.compile``; the modules passed in stay the
      plain ones (and share their parameters), for sampling and saving.
    """

    def __init__(self, netG: nn.Module, netD: nn.Module, optimizer_G: Optimizer,
                 optimizer_D: Optimizer, nz: int, device: torch.device,
                 memory_format: torch.memory_format = torch.preserve_format,
                 amp: bool = False, compile: bool = False) -> None:
        self.device, self.nz, self.memory_format = device, nz, memory_format
        self.optimizers = (optimizer_G, optimizer_D)
        self.autocast = (partial(torch.autocast, device.type, dtype=torch.bfloat16) if amp
                         else nullcontext)
        self.netG = torch.compile(netG) if compile else netG
        self.netD = torch.compile(netD) if compile else netD

    def __call__(self, real: Tensor) -> Tensor:
        """Train on one batch of real images; returns ``gan_step``'s statistics tensor."""
        real = real.to(self.device, non_blocking=True, memory_format=self.memory_format)
        return gan_step(self.netG, self.netD, *self.optimizers, real, self.nz, self.autocast)
