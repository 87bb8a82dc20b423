"""Seeds and random states: what makes a run repeatable and a resume exact."""

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and every GPU) random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_rng_states(loader_generator: torch.Generator) -> dict:
    """The random states a run draws from: PyTorch's (the noise) and the data order's.

    Python's and NumPy's are seeded but never drawn from in training, so they are not saved.
    """
    return {"torch": torch.get_rng_state(), "loader": loader_generator.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(states: dict, loader_generator: torch.Generator) -> None:
    """Restore the states of ``get_rng_states`` (CUDA's where there are both GPU and states)."""
    torch.set_rng_state(states["torch"])
    loader_generator.set_state(states["loader"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"][: torch.cuda.device_count()])
