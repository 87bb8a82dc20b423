"""Sample quality, measured in the judge's feature space against the MNIST test set.

FID and KID (torchmetrics, the judge's 128 features in place of Inception's); the Inception
Score, judge confidence and digit shares from its class probabilities; precision, recall,
density and coverage (k = 5 nearest neighbours); memorisation, the samples' pixel distance to
the nearest training image against the test images'. What each means: docs/quality.md.
"""

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from models import Judge
from utils.visualize import device_of, evaluating

K_NEIGHBOURS = 5
MIN_SAMPLES = K_NEIGHBOURS + 1  # the k-NN scores need k other samples; FID needs 2
MEMORISATION_SAMPLES = 1000  # nearest-training-image search is the costly part


class _Precomputed(nn.Identity):
    """Lets torchmetrics take features already computed by the judge."""

    num_features = Judge.num_features


@dataclass
class Reference:
    """What every evaluation compares with: the test set through the judge, the training set."""

    test_features: Tensor  # (N, 128)
    test_labels: Tensor  # (N,)
    test_images: Tensor  # (N, 1, 28, 28) in [-1, 1]
    train_images: Tensor  # (M, 1, 28, 28) in [-1, 1], for memorisation and the real reference


@torch.no_grad()
def judge_images(judge: Judge, images: Tensor, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """The judge's features ``(N, 128)`` and class probabilities ``(N, 10)``, on the CPU."""
    device = device_of(judge)
    features, probabilities = [], []
    for batch in images.split(batch_size):
        f = judge.features(batch.to(device))
        features.append(f.float().cpu())
        probabilities.append(judge.classifier(f).float().softmax(1).cpu())
    return torch.cat(features), torch.cat(probabilities)


@torch.no_grad()
def generate_images(netG: nn.Module, n: int, seed: int, nz: int,
                    batch_size: int = 1000) -> Tensor:
    """``n`` images of ``netG`` on the CPU, from noise of a CPU generator seeded by ``seed``."""
    device = device_of(netG)
    noise = torch.randn(n, nz, 1, 1, generator=torch.Generator().manual_seed(seed))
    return torch.cat([netG(z.to(device)).float().cpu() for z in noise.split(batch_size)])


def make_reference(judge: Judge, test_images: Tensor, test_labels: Tensor,
                   train_images: Tensor) -> Reference:
    """Run the test set through the judge once, for all later evaluations."""
    features, _ = judge_images(judge, test_images)
    return Reference(features, test_labels, test_images, train_images)


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID between two sets of judge features ``(N, 128)``, by torchmetrics."""
    metric = FrechetInceptionDistance(feature=_Precomputed())
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return metric.compute().item()


def kernel_distance(real: Tensor, fake: Tensor, seed: int) -> tuple[float, float]:
    """KID (mean, std over 100 random subsets) between two sets of judge features."""
    size = min(1000, len(real), len(fake))
    with warnings.catch_warnings():  # it warns that it keeps all features: here, 128 per image
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=_Precomputed(), subsets=100, subset_size=size)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):  # the subsets are drawn from the global RNG
        torch.default_generator.manual_seed(seed)  # the CPU's only: a GPU's stays as it was
        mean, std = metric.compute()
    return mean.item(), std.item()


def inception_score(probabilities: Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) over class probabilities ``(N, 10)`` (one split)."""
    p = probabilities.double().clamp_min(1e-12)
    marginal = p.mean(0, keepdim=True)
    return math.exp((p * (p.log() - marginal.log())).sum(1).mean().item())


def digit_shares(probabilities: Tensor) -> Tensor:
    """Share of each digit 0-9 among the judge's top choices."""
    return torch.bincount(probabilities.argmax(1), minlength=10).double() / len(probabilities)


def share_divergence(shares: Tensor, real_shares: Tensor) -> float:
    """KL(shares || real_shares), with 0 log 0 = 0: 0 when the digit mix matches."""
    present = shares > 0
    return (shares[present] * (shares[present] / real_shares[present]).log()).sum().item()


def _kth_neighbour_radius(x: Tensor, k: int, chunk: int = 1000) -> Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    return torch.cat([torch.cdist(part, x).kthvalue(k + 1, dim=1).values
                      for part in x.split(chunk)])


def precision_recall_density_coverage(real: Tensor, fake: Tensor, k: int = K_NEIGHBOURS,
                                      chunk: int = 1000) -> dict[str, float]:
    """The four k-NN manifold scores of ``fake`` features against ``real`` features."""
    real_radius = _kth_neighbour_radius(real, k, chunk)
    fake_radius = _kth_neighbour_radius(fake, k, chunk)
    inside_real = []  # per fake sample: how many real k-NN balls hold it
    for part in fake.split(chunk):
        inside_real.append((torch.cdist(part, real) <= real_radius).sum(1))
    inside_real = torch.cat(inside_real)
    recalled, covered = [], []
    for part, radius in zip(real.split(chunk), real_radius.split(chunk), strict=True):
        distances = torch.cdist(part, fake)
        recalled.append((distances <= fake_radius).any(1))
        covered.append(distances.min(1).values <= radius)
    return {
        "precision": (inside_real > 0).double().mean().item(),
        "recall": torch.cat(recalled).double().mean().item(),
        "density": inside_real.double().mean().item() / k,
        "coverage": torch.cat(covered).double().mean().item(),
    }


def nearest_distance(queries: Tensor, reference: Tensor, chunk: int = 250) -> Tensor:
    """Pixel L2 distance from each query image to its nearest reference image."""
    flat = reference.flatten(1)
    return torch.cat([torch.cdist(part.flatten(1), flat).min(1).values
                      for part in queries.split(chunk)])


def memorisation(images: Tensor, reference: Reference, seed: int) -> dict[str, float]:
    """Nearest-training-image distances of samples against those of test images."""
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    sample = images[pick[:MEMORISATION_SAMPLES]]
    test = reference.test_images[:MEMORISATION_SAMPLES]
    generated_nn = nearest_distance(sample, reference.train_images)
    test_nn = nearest_distance(test, reference.train_images)
    return {
        "nn_distance_median": generated_nn.median().item(),
        "nn_distance_test_median": test_nn.median().item(),
        "nn_distance_ratio": (generated_nn.median() / test_nn.median()).item(),
        "copies": (generated_nn < test_nn.quantile(0.01)).double().mean().item(),
    }


def score_images(images: Tensor, judge: Judge, reference: Reference,
                 seed: int = 0) -> dict[str, float | list[float]]:
    """Every metric of the module docstring for ``images`` ``(N, 1, 28, 28)`` in [-1, 1]."""
    features, probabilities = judge_images(judge, images)
    real_shares = torch.bincount(reference.test_labels, minlength=10).double()
    real_shares /= real_shares.sum()
    shares = digit_shares(probabilities)
    kid_mean, kid_std = kernel_distance(reference.test_features, features, seed)
    return {
        "n": len(images),
        "fid": frechet_distance(reference.test_features, features),
        "kid": kid_mean,
        "kid_std": kid_std,
        "inception_score": inception_score(probabilities),
        "judge_confidence": probabilities.max(1).values.mean().item(),
        "digit_kl": share_divergence(shares, real_shares),
        "min_digit_ratio": (shares / real_shares).min().item(),
        **precision_recall_density_coverage(reference.test_features, features),
        **memorisation(images, reference, seed),
        "digit_shares": [round(s, 5) for s in shares.tolist()],
        "digit_share_ratios": [round(r, 4) for r in (shares / real_shares).tolist()],
    }


def real_data_scores(judge: Judge, reference: Reference, n: int = 10_000,
                     seed: int = 0) -> dict[str, float | list[float]]:
    """The floor: ``n`` training images (a seeded choice) scored like generated ones."""
    pick = torch.randperm(len(reference.train_images),
                          generator=torch.Generator().manual_seed(seed))[:n]
    scores = score_images(reference.train_images[pick], judge, reference, seed)
    # Training images are their own nearest training images: memorisation does not apply.
    for key in ("nn_distance_median", "nn_distance_ratio", "copies"):
        scores[key] = None
    return scores


def evaluate_generator(netG: nn.Module, judge: Judge, reference: Reference, n: int = 10_000,
                       seed: int = 0) -> dict[str, float | list[float]]:
    """Score ``n`` samples of ``netG``, drawn in eval mode from noise seeded by ``seed``."""
    with evaluating(netG):
        images = generate_images(netG, n, seed, netG.nz)
    return score_images(images, judge, reference, seed)
