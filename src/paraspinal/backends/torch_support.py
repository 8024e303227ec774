"""What the torch-based backends and ``paraspinal train`` share: the device by name, and torch's CPU threads.

torch is imported inside the functions only, so importing this module loads no heavy library.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from paraspinal.errors import InputError, ParaspinalError

DEVICES = ("cpu", "cuda", "auto")
_DEVICE_NAME = re.compile(r"cpu|cuda(:\d+)?|auto")


def torch_device(name: str, *, instead: str = "--device cpu") -> Any:
    """The ``torch.device`` for ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when torch sees a GPU, else CPU).

    One-line errors: :class:`ParaspinalError` for an unknown name, :class:`InputError` for a CUDA device
    torch does not see here (``instead`` says what to use, e.g. ``device = 'cpu'`` in a config file).
    """
    import torch

    if not _DEVICE_NAME.fullmatch(name):
        raise ParaspinalError(f"unknown device '{name}' (choose from {', '.join(DEVICES)})")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if name == "auto":
        return torch.device("cuda" if count else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= count:
        raise InputError(f"device {name!r} is not available here ({count} CUDA device(s)); use {instead}")
    return device


def set_torch_threads(threads: int | None) -> None:
    """Set torch's CPU threads for the whole process (at least 1); None leaves torch's setting."""
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, int(threads)))


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` inside the block and restored after it (None: left as they are)."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
