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
    """Restore the states saved by ``get_rng_states``.

    The CUDA states are restored where CUDA is available and the checkpoint has them, so a
    checkpoint written on a GPU resumes on a CPU and the other way round.
    """
    random.setstate(states["python"])
    keys, pos, has_gauss, cached_gaussian = states["numpy"]
    numpy_keys = keys.numpy().astype(np.uint32)
    np.random.set_state(("MT19937", numpy_keys, pos, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"][: torch.cuda.device_count()])
    loader_generator.set_state(states["loader"])
