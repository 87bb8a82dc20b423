"""Image grids and latent interpolation."""

import pytest
import torch
from PIL import Image

from models import Generator
from utils.visualize import save_interpolation_grid, save_progress_gif, slerp


def test_slerp_runs_between_the_endpoints_on_the_sphere():
    torch.manual_seed(0)
    z0, z1 = torch.randn(100, 1, 1), torch.randn(100, 1, 1)
    t = torch.linspace(0, 1, 7)
    path = slerp(z0, z1, t)
    assert path.shape == (7, 100, 1, 1)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)
    # between two vectors of equal norm, slerp keeps the norm; the straight line cuts the corner
    z1 = z1 * z0.norm() / z1.norm()
    assert slerp(z0, z1, t).flatten(1).norm(dim=1) == pytest.approx(z0.norm().item(), rel=1e-5)
    assert ((z0 + z1) / 2).norm() < 0.9 * z0.norm()
    parallel = slerp(z0, 3 * z0, torch.tensor([0.0, 0.5, 1.0]))  # the straight line
    torch.testing.assert_close(parallel[1], 2 * z0)


def test_interpolation_grid_rows_run_between_endpoints(tmp_path):
    netG = Generator().eval()
    endpoints = torch.randn(2, 3, 100, 1, 1)
    images = save_interpolation_grid(netG, endpoints, tmp_path / "i.png", n_steps=5)
    assert images.shape == (15, 1, 28, 28)
    with torch.no_grad():  # row 1 starts at the image of its start, ends at its end's
        torch.testing.assert_close(images[5], netG(endpoints[0, 1:2])[0])
        torch.testing.assert_close(images[9], netG(endpoints[1, 1:2])[0])
    with Image.open(tmp_path / "i.png") as grid:
        assert grid.size == (5 * 30 + 2, 3 * 30 + 2)


def test_progress_gif_has_one_frame_per_epoch_up_to_the_last(tmp_path):
    for epoch, shade in ((1, 0), (2, 100), (3, 200), (10, 250)):  # 3 and 10: a later branch
        Image.new("L", (8, 8), shade).save(tmp_path / f"epoch_{epoch}_final.png")
    Image.new("L", (8, 8), 50).save(tmp_path / "epoch_best_final.png")  # a user's, not a frame
    assert save_progress_gif(tmp_path, tmp_path / "p.gif", last_epoch=2) == 2
    with Image.open(tmp_path / "p.gif") as gif:
        assert gif.n_frames == 2
        assert [gif.seek(i) or gif.convert("L").getpixel((0, 0)) for i in range(2)] == [0, 100]
