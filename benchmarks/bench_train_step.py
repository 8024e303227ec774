"""Benchmark: one `paraspinal train` optimiser step, by network size and number format.

Run: ``python benchmarks/bench_train_step.py [--threads 1] [--steps 12] [--device cpu]`` (needs the train extra).

Each row times the trainer's own parts on a synthetic 3-slice dataset: ``batch`` is drawing and augmenting a
batch of 8 crops of 128 x 128 (``make_batch``), ``step`` the forward pass, the loss, the backward pass and the
AdamW update; ``total`` their sum, and ``8k steps`` what 8,000 of them take (the spine recipe's length).
Medians over ``--steps`` steps after 3 warm-up steps. Sizes: the spine recipe (base 8 / max 128, 5 levels) and
the wider net tried for it (base 16 / max 256); formats ``float32`` and ``bfloat16`` (``[training] precision``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _images(n_classes: int):
    from paraspinal.training.dataset import TrainingImage

    rng = np.random.default_rng(0)
    i, j = np.mgrid[0:224, 0:224]
    classes = np.zeros((224, 224, 3), dtype=np.uint8)
    for c in range(1, n_classes):
        classes[(np.abs(i - 30 - 32 * c) < 12) & (np.abs(j - 110) < 18)] = c
    image = (classes > 0) * 1.0 + rng.normal(0, 0.1, classes.shape)
    return [
        TrainingImage(
            name="bench/ch0",
            case_id="bench",
            channel="ch0",
            image=image.astype(np.float32),
            classes=classes,
            slice_spacing_mm=1.0,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from paraspinal.backends.torch_support import torch_device
    from paraspinal.preprocessing import InputSpec
    from paraspinal.training.augment import AugmentConfig
    from paraspinal.training.config import TrainConfig
    from paraspinal.training.steps import autocast, make_batch, segmentation_loss
    from paraspinal.training.unet import UNet2D, UNetConfig

    torch.set_num_threads(args.threads)
    device = torch_device(args.device)
    n_classes = 6
    images = _images(n_classes)
    train = [(0, k) for k in range(3)]
    spec = InputSpec(axcodes=("P", "S", "R"), spacing_mm=(1.5, 1.5), size_multiple=16)
    config = TrainConfig(batch_size=8, augment=AugmentConfig(crop_px=128))
    swap = np.arange(n_classes)
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {device}, batch 8 x 128 x 128")
    print(f"{'network':<20}{'precision':<11}{'batch s':>9}{'step s':>9}{'total s':>9}{'8k steps min':>14}")
    for base, top in ((8, 128), (16, 256)):
        for precision in ("float32", "bfloat16"):
            gen = torch.Generator().manual_seed(0)
            model = UNet2D(UNetConfig(n_classes=n_classes, base_channels=base, max_channels=top, levels=5))
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
            model = model.to(device)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            rng = np.random.default_rng(0)
            batch_s, step_s = [], []
            for n in range(args.steps + 3):
                t0 = time.perf_counter()
                x, y = make_batch(images, train, rng=rng, config=config, swap_lut=swap, spec=spec)
                t1 = time.perf_counter()
                with autocast(precision, device):
                    logits = model(x.to(device))
                loss = segmentation_loss(logits, y.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                float(loss.detach())  # waits for the device
                t2 = time.perf_counter()
                if n >= 3:
                    batch_s.append(t1 - t0)
                    step_s.append(t2 - t1)
            b, s = statistics.median(batch_s), statistics.median(step_s)
            network = f"base {base}/max {top}"
            print(f"{network:<20}{precision:<11}{b:>9.3f}{s:>9.3f}{b + s:>9.3f}{8000 * (b + s) / 60:>14.0f}")


if __name__ == "__main__":
    main()
