"""Write tests/model/data/torch_reference.npz: a small nn.Sequential initialised by PyTorch,
its weights, an input batch and every module's output, so the tests can check, without
torch installed, that the same weights give the same volumes in ConvScope.

    pip install torch==2.13.0 && python scripts/make_torch_reference.py
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

import model
from model.interop import torch_source

SPEC = {
    "name": "torch-reference",
    "input": [10, 10, 3],
    "classes": ["a", "b", "c", "d"],
    "layers": [
        {"kind": "conv", "filters": 5, "size": 3, "stride": 1, "pad": 1},
        {"kind": "relu"},
        {"kind": "pool", "size": 2, "stride": 2},
        {"kind": "conv", "filters": 6, "size": 4, "stride": 2, "pad": 1},
        {"kind": "relu"},
        {"kind": "fc", "units": 4},
        {"kind": "softmax"},
    ],
}


def main() -> None:
    torch.manual_seed(0)
    net = model.build(SPEC)
    seq = eval(torch_source(net), {"nn": nn})  # the source the README shows
    x = torch.randn(2, 3, 10, 10)
    outputs = []
    with torch.no_grad():
        h = x
        for module in seq:
            h = module(h)
            if not isinstance(module, nn.Flatten):
                outputs.append(h.permute(0, 2, 3, 1) if h.ndim == 4 else h[:, None, None, :])
    arrays = {f"torch.{k}": v.numpy() for k, v in seq.state_dict().items()}
    arrays["input"] = x.permute(0, 2, 3, 1).numpy()
    arrays["spec"] = np.array(json.dumps(SPEC))
    arrays.update({f"output.{i}": o.numpy() for i, o in enumerate(outputs)})
    out = Path(__file__).parent.parent / "tests" / "model" / "data" / "torch_reference.npz"
    np.savez(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
