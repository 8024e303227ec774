"""paraspinal: quantitative lumbar spine MRI (paraspinal muscle size and fat).

Importing the package turns off ONNX Runtime's telemetry for this process (``ORT_DISABLE_TELEMETRY=1``,
ONNX Runtime's documented switch, read when it initialises): without it, official ONNX Runtime builds look
up Microsoft's telemetry host some seconds after import and keep a device identifier under
``~/.cache/Microsoft``. Nothing in paraspinal touches the network (``tests/reliability`` checks it
with ``strace`` in a namespace without network).
"""

import os
from importlib.metadata import PackageNotFoundError, version

os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # before anything can import onnxruntime

try:
    __version__ = version("paraspinal")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
