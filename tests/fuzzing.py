"""The one hypothesis profile of the fuzz tests (issue 19): derandomized, so CI runs the same inputs every
time and a failure reproduces; no example database; ``FUZZ_EXAMPLES`` scales every fuzz test for a long
run (``FUZZ_EXAMPLES=5000 pytest tests -k fuzz``) without editing it."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("FUZZ_EXAMPLES", "0") or 0))


def fuzz_settings(max_examples: int) -> settings:
    """``max_examples`` for CI (keep it modest), or ``FUZZ_EXAMPLES`` when that is larger."""
    return settings(max_examples=max(max_examples, SCALE), derandomize=True, database=None, deadline=None,
                    print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                            HealthCheck.function_scoped_fixture,
                                                            HealthCheck.filter_too_much])
