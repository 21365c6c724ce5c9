"""A tiny RunSpec built in code, so telemetry tests do not depend on the committed suites."""

from __future__ import annotations

import pytest
from fakes import make_spec


@pytest.fixture
def spec():
    return make_spec()
