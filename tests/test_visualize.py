"""Image grids and latent interpolation."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from models import Generator
from utils.visualize import (
    generate_fixed_noise_grid,
    interpolation_noise,
    lerp,
    save_interpolation_grid,
    slerp,
)


def test_fixed_noise_grid_is_8x8_tiles(tmp_path: Path) -> None:
    netG = Generator().eval()
    noise = torch.randn(64, 100, 1, 1)
    images = generate_fixed_noise_grid(netG, noise, tmp_path / "grid.png")
    assert images.shape == (64, 1, 28, 28)
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 28-pixel tiles, 2-pixel borders
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was moved into place


def test_slerp_and_lerp_endpoints_and_norms() -> None:
    torch.manual_seed(0)
    z0, z1 = torch.randn(100, 1, 1), torch.randn(100, 1, 1)
    t = torch.linspace(0, 1, 7)
    for interpolate in (lerp, slerp):
        path = interpolate(z0, z1, t)
        assert path.shape == (7, 100, 1, 1)
        torch.testing.assert_close(path[0], z0)
        torch.testing.assert_close(path[-1], z1)
    # between two vectors of equal norm, slerp keeps the norm; lerp cuts the corner
    z1 = z1 * z0.norm() / z1.norm()
    assert slerp(z0, z1, t).flatten(1).norm(dim=1) == pytest.approx(z0.norm().item(), rel=1e-5)
    assert lerp(z0, z1, t)[3].norm() < 0.9 * z0.norm()


def test_slerp_of_parallel_vectors_falls_back_to_lerp() -> None:
    z0 = torch.ones(10)
    path = slerp(z0, 3 * z0, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(path[1], 2 * z0)


def test_interpolation_grid_rows_run_between_endpoints(tmp_path: Path) -> None:
    endpoints = torch.randn(2, 3, 100, 1, 1)
    noise = interpolation_noise(endpoints, n_steps=5)
    assert noise.shape == (15, 100, 1, 1)
    torch.testing.assert_close(noise[5], endpoints[0, 1])
    torch.testing.assert_close(noise[9], endpoints[1, 1])
    images = save_interpolation_grid(Generator().eval(), endpoints, tmp_path / "i.png", n_steps=5)
    assert images.shape == (15, 1, 28, 28)
    with Image.open(tmp_path / "i.png") as grid:
        assert grid.size == (5 * 30 + 2, 3 * 30 + 2)
