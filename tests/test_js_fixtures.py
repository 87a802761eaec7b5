"""The receptive fields tests/js/pure.test.mjs holds the page to are model/'s own: the
fixture file is exactly what tests/js/make_fixtures.py computes from model/ now."""

import json

from tests.js.make_fixtures import FIXTURE, receptive_fields


def test_the_receptive_field_fixture_is_model_s() -> None:
    assert json.loads(FIXTURE.read_text()) == receptive_fields(), (
        "model/'s receptive fields changed: run python tests/js/make_fixtures.py"
    )
