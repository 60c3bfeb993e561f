"""The trial test suite of twisted_mitm.

Property-based tests use the hypothesis profile chosen here. The default one is
deterministic (a fixed seed), bounded and keeps no example database, so C{make test}
gives the same result on every run. C{TWISTED_MITM_FUZZ=long} selects a long run with a
random seed instead (C{docs/reliability.md}, "Fuzzing the codec"). What hypothesis still
stores (a cache of constants read from the source) goes to the system's temporary
directory, not into the checkout.
"""

import os
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "twisted_mitm-hypothesis")

settings.register_profile(
    "twisted_mitm", derandomize=True, max_examples=150, deadline=None, database=None
)
settings.register_profile(
    "twisted_mitm_long", max_examples=20_000, deadline=None, database=None, print_blob=True
)
settings.load_profile(
    "twisted_mitm_long" if os.environ.get("TWISTED_MITM_FUZZ") == "long" else "twisted_mitm"
)
