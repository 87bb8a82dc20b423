"""An exponential moving average of the generator's weights (Yazici et al., ICLR 2019).

It changes nothing in training: after each step its weights move towards the generator's by
``1 - decay``. A warm-up (TensorFlow's ``num_updates`` ramp) forgets the early weights fast,
and before use its BatchNorm statistics are estimated afresh for its own weights, as SWA does
(Izmailov et al., 2018). Why and how chosen: docs/averaging.md. ``AveragedModel`` is not
used: it reads its update counter from a tensor at every step (a GPU stall) and has no warm-up.
"""

import copy

import torch
from torch.optim.swa_utils import update_bn

from models import Generator

WARMUP = 10  # the decay after n updates is at most (1 + n) / (WARMUP + n)
BN_SAMPLES, BN_BATCH_SIZE = 5120, 256  # noise for the BatchNorm statistics of the average


class GeneratorAverage:
    """The average of ``netG``'s weights, starting as a copy, with ``decay`` after the warm-up.

    The noise for its BatchNorm statistics is drawn from ``seed + 1`` by a generator of its
    own, so averaging leaves the run's random state unchanged.
    """

    def __init__(self, netG: Generator, decay: float, seed: int) -> None:
        self.decay, self.seed = decay, seed
        self.model = copy.deepcopy(netG).requires_grad_(False).eval()
        self.updates = 0
        self._statistics_fit = False  # the BatchNorm statistics are those of these weights

    def decay_at(self, updates: int) -> float:
        """The decay of update number ``updates + 1`` (warm-up, then ``decay``)."""
        return min(self.decay, (1 + updates) / (WARMUP + updates))

    @torch.no_grad()
    def update(self, netG: Generator) -> None:
        """Move the averaged weights towards ``netG``'s (after each training step)."""
        weight = 1.0 - self.decay_at(self.updates)
        for averaged, current in zip(self.model.parameters(), netG.parameters(), strict=True):
            averaged.lerp_(current, weight)
        self.updates += 1
        self._statistics_fit = False

    @torch.no_grad()
    def generator(self) -> Generator:
        """The averaged generator in eval mode, with BatchNorm statistics of its own weights."""
        if not self._statistics_fit:
            device = next(self.model.parameters()).device
            noise = torch.randn(BN_SAMPLES, self.model.nz, 1, 1,
                                generator=torch.Generator().manual_seed(self.seed + 1))
            update_bn(noise.split(BN_BATCH_SIZE), self.model, device=device)
            self._statistics_fit = True
        return self.model.eval()

    def state_dict(self) -> dict:
        """The averaged weights and the number of updates, for a checkpoint."""
        return {"generator": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a ``state_dict``."""
        self.model.load_state_dict(state["generator"])
        self.updates = state["updates"]
        self._statistics_fit = False
