"""Where a number came from: the machine and the code that produced it."""

import platform
import subprocess
from pathlib import Path

import torch


def describe_machine(device: torch.device) -> str:
    """A one-line description of the hardware and software a run or benchmark used."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
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
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=here).stdout.strip()
    except OSError:
        return "unknown (no git)"
    return (commit or "unknown (not a git checkout)") + (" +changes" if dirty else "")
