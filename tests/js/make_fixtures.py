"""Writes tests/js/receptive_fields.json: model/'s receptive-field boxes for every layer of
the shipped specs at a few neurons, which tests/js/pure.test.mjs holds the page's
receptiveBox to. tests/test_js_fixtures.py checks the file is what this would write.

    python tests/js/make_fixtures.py
"""

import json
from pathlib import Path

import model

FIXTURE = Path(__file__).with_name("receptive_fields.json")


def receptive_fields() -> list[dict]:
    cases = []
    for model_id in model.shipped_models():
        net = model.build(model_id)
        height, width, _ = net.input_shape
        for index, layer in enumerate(net.layers):
            field = net.receptive_field(index)
            h, w, _ = layer.output_shape
            for row, col in {(0, 0), (h // 2, w // 3), (h - 1, w - 1)}:
                top, left, bottom, right = field.box(row, col, height, width)
                cases.append(
                    {
                        "model": model_id,
                        "layer": index,
                        "rf": vars(field),
                        "neuron": [row, col],
                        "input": [height, width],
                        "box": {"top": top, "left": left, "bottom": bottom, "right": right},
                    }
                )
    return sorted(cases, key=lambda c: (c["model"], c["layer"], c["neuron"]))


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(receptive_fields(), indent=1) + "\n")
