"""Training the built-in 2-D U-Net (needs the ``train`` extra: ``pip install 'paraspinal[train]'``).

Import :func:`paraspinal.training.trainer.train` lazily: this package imports torch.
"""

from paraspinal.training.config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config"]
