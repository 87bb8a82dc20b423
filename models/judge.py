"""The judge: a small MNIST classifier that scores generated digits."""

from torch import Tensor, nn


class Judge(nn.Module):
    """A LeNet-style CNN (LeCun et al., 1998, with ReLU and max-pooling) for MNIST digits.

    Takes images ``(N, 1, 28, 28)`` in the generator's range [-1, 1]. ``features`` gives the
    penultimate layer ``(N, 128)``, the space in which the sample-quality metrics (FID, KID,
    precision/recall, density/coverage) compare generated and real digits; ``forward`` gives
    the logits ``(N, 10)`` of the ten digit classes.
    """

    num_features = 128  # read by torchmetrics when the judge is its feature extractor

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            # 1 x 28 x 28 -> 32 x 14 x 14
            nn.Conv2d(1, 32, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            # -> 64 x 7 x 7
            nn.Conv2d(32, 64, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            # -> 128 features
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, self.num_features),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(self.num_features, 10))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, 10)`` of images ``x`` ``(N, 1, 28, 28)`` in [-1, 1]."""
        return self.classifier(self.features(x))
