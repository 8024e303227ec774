"""paraspinal: quantitative lumbar spine MRI (paraspinal muscle size and fat)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("paraspinal")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
