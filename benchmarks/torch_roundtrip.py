"""PyTorch -> ONNX -> ConvScope, and back: the README's export line checked for real.

Two small PyTorch classifiers covering the imported layer kinds (batchnorm folded by the
exporter, strided, depthwise and dilated convs, leaky ReLU, sigmoid, tanh, ceil-mode and
padded pools, global average pool, dropout, linear, softmax and log-softmax) are exported
with torch.onnx.export, imported with model/onnx_import.py, and run on the same random input
by both engines; then ConvScope's generated PyTorch source (model/interop.py) is executed
with the imported weights and compared too. Prints the largest differences.

    pip install torch==2.13.0          # the yardstick only; ConvScope never imports it
    python benchmarks/torch_roundtrip.py

torch 2.13's default exporter (dynamo=True) needs the onnxscript package; `dynamo=False`
(the TorchScript exporter) needs nothing more, so that is what this script and the README use.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from model import onnx_import
from model.interop import to_torch, torch_source


def classifiers() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)
    vgg = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
        nn.AvgPool2d(2, ceil_mode=True), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10), nn.Softmax(1),
    )  # fmt: skip
    dilated = nn.Sequential(
        nn.Conv2d(1, 4, 5, padding=2), nn.Sigmoid(), nn.Conv2d(4, 6, 3, dilation=2, padding=2),
        nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.Dropout(),
        nn.Flatten(), nn.Linear(6 * 15 * 15, 10), nn.LogSoftmax(1),
    )  # fmt: skip
    with torch.no_grad():  # a trained-looking batchnorm, not the identity it starts as
        batchnorm = vgg[1]
        batchnorm.running_mean.uniform_(-1, 1)
        batchnorm.running_var.uniform_(0.5, 2)
        batchnorm.weight.uniform_(0.5, 1.5)
        batchnorm.bias.uniform_(-0.5, 0.5)
    return {
        "vgg-like, 3x32x32": (vgg, (1, 3, 32, 32)),
        "dilated, 1x28x28": (dilated, (1, 1, 28, 28)),
    }


def main() -> None:
    for name, (net, shape) in classifiers().items():
        net.eval()
        x = torch.randn(*shape)
        buffer = io.BytesIO()
        torch.onnx.export(net, x, buffer, dynamo=False)
        imported = onnx_import.convert(onnx_import.read_onnx(buffer.getvalue()))
        channels = shape[1]
        ours = imported.network(
            name=name,
            classes=[str(i) for i in range(10)],
            normalization={"mean": [0.0] * channels, "std": [1.0] * channels},
            input_style="photo",
        )
        scores = onnx_import.check_forward(ours, x.numpy().transpose(0, 2, 3, 1))
        with torch.no_grad():
            expected = net(x).numpy().reshape(1, -1)
        back = eval(torch_source(ours), {"nn": nn})
        state = to_torch(ours)
        back.load_state_dict(
            {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
        )
        with torch.no_grad():
            again = back.eval()(x).numpy().reshape(1, -1)
        kinds = ", ".join(layer["kind"] for layer in imported.layers)
        print(f"{name}: {kinds}")
        print(
            f"  max |ConvScope - PyTorch| {np.abs(scores - expected).max():.1e} (scores up to "
            f"{np.abs(expected).max():.2f}); generated source vs ConvScope "
            f"{np.abs(again - scores).max():.1e}"
        )


if __name__ == "__main__":
    main()
