"""Where the networks run: picking the device, and what it supports."""

import shutil
import sys
from pathlib import Path

import torch

from utils.errors import ArgumentError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA, then Apple's MPS, then the CPU), ``cpu``, ``cuda`` or ``mps``, if here."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ArgumentError(
            f"--device {name}: PyTorch sees no {name} device here; use --device auto or cpu"
        )
    return torch.device(name)


def note_unused_gpu(device: torch.device) -> None:
    """Say so when an NVIDIA GPU is here (``nvidia-smi``, the driver) but PyTorch is CPU-only."""
    if device.type != "cpu" or torch.cuda.is_available():
        return
    if shutil.which("nvidia-smi") or Path("/proc/driver/nvidia/version").exists():
        print(f"train.py: note: this machine has an NVIDIA GPU, but this PyTorch "
              f"({torch.__version__}) cannot use it, so training runs on the CPU; see "
              "README.md, 'Installing PyTorch for your hardware'", file=sys.stderr)


def amp_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 natively (on a CPU: AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        mkldnn = torch.ops.mkldnn
        return torch.backends.mkldnn.is_available() and mkldnn._is_mkldnn_bf16_supported()
    return True  # MPS: autocast to bfloat16 is PyTorch's to support or refuse


def fastest_memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on the CPU (8% faster a step, benchmarks/RESULTS.md); the default elsewhere."""
    return torch.channels_last if device.type == "cpu" else torch.preserve_format


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is PyTorch (CPU or GPU) or Python running out of memory."""
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "not enough memory" in text or "can't allocate memory" in text
    )
