"""One GAN step, and the run-time plumbing around it: device, seeds, random states."""

import platform
import random
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from utils.errors import ArgumentError

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
    netD.requires_grad_(False)
    with autocast():
        d_fake_post = netD(fake).float()
    loss_G = bce(d_fake_post, REAL)
    loss_G.backward()
    optimizer_G.step()
    netD.requires_grad_(True)

    return torch.stack([loss_D, loss_G, d_real.mean(), d_fake.mean(), d_fake_post.mean()]
                       ).detach()


def stats_to_dict(stats: Tensor) -> dict[str, float]:
    """The numbers of one ``gan_step`` as a dict keyed by ``STAT_NAMES`` (waits for them)."""
    return dict(zip(STAT_NAMES, stats.tolist(), strict=True))


class DeviceUnavailableError(ArgumentError):
    """The device asked for with ``--device`` is not available."""


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``mps`` into a device that exists here.

    ``auto`` picks CUDA, then Apple's MPS, then the CPU.
    """
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise DeviceUnavailableError(
            f"--device {name}: PyTorch sees no {name} device here; use --device auto or cpu"
        )
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and every GPU) random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_rng_states(loader_generator: torch.Generator) -> dict:
    """Every random state a run draws from, for a checkpoint (see ``set_rng_states``).

    Holds only tensors and Python numbers, so ``torch.load(weights_only=True)`` reads it.
    """
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": loader_generator.get_state(),
    }


def set_rng_states(states: dict, loader_generator: torch.Generator) -> None:
    """Restore the states saved by ``get_rng_states``."""
    random.setstate(states["python"])
    keys, pos, has_gauss, cached_gaussian = states["numpy"]
    numpy_keys = keys.numpy().astype(np.uint32)
    np.random.set_state(("MT19937", numpy_keys, pos, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    loader_generator.set_state(states["loader"])


def amp_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 natively (on a CPU: AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        mkldnn = torch.ops.mkldnn
        return torch.backends.mkldnn.is_available() and mkldnn._is_mkldnn_bf16_supported()
    return True  # MPS: autocast to bfloat16 is PyTorch's to support or refuse


class FastStep:
    """``gan_step`` as fast as the device and the flags allow, computing the same thing.

    - CPU: networks and batches in channels-last memory format (measured 8% faster in
      float32 on this repository's 2-core CPU; see benchmarks/RESULTS.md);
    - CUDA: cuDNN picks the fastest convolution algorithms (``cudnn.benchmark``);
    - ``amp``: the networks run under bfloat16 autocast; losses, BatchNorm running
      statistics and the weights stay float32;
    - ``compile``: both networks go through ``torch.compile``; the modules passed in stay the
      plain ones (and share their parameters), for sampling and saving.
    """

    def __init__(self, netG: nn.Module, netD: nn.Module, optimizer_G: Optimizer,
                 optimizer_D: Optimizer, nz: int, device: torch.device, amp: bool = False,
                 compile: bool = False) -> None:
        self.device, self.nz = device, nz
        self.optimizers = (optimizer_G, optimizer_D)
        self.memory_format = torch.channels_last if device.type == "cpu" else torch.preserve_format
        netG.to(memory_format=self.memory_format)
        netD.to(memory_format=self.memory_format)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.autocast = (partial(torch.autocast, device.type, dtype=torch.bfloat16) if amp
                         else nullcontext)
        self.netG = torch.compile(netG) if compile else netG
        self.netD = torch.compile(netD) if compile else netD

    def __call__(self, real: Tensor) -> Tensor:
        """Train on one batch of real images; returns ``gan_step``'s statistics tensor."""
        real = real.to(self.device, non_blocking=True, memory_format=self.memory_format)
        return gan_step(self.netG, self.netD, *self.optimizers, real, self.nz, self.autocast)


def describe_machine(device: torch.device) -> str:
    """A one-line description of the hardware and software a run or benchmark used."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return (f"{model}, {torch.get_num_threads()} threads, no GPU, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def describe_code() -> str:
    """The git commit of the code, marked ``+changes`` if the work tree differs from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=Path(__file__).parent
                               ).stdout.strip()
    except OSError:
        return "unknown (no git)"
    return (commit or "unknown (not a git checkout)") + (" +changes" if dirty else "")


@contextmanager
def evaluating(net: nn.Module) -> Iterator[nn.Module]:
    """Run ``net`` in eval mode (BatchNorm running statistics) for the block."""
    net.eval()
    try:
        yield net
    finally:
        net.train()
