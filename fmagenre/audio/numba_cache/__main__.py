"""``python -m fmagenre.audio.numba_cache``: fill numba's cache with the extractor's kernels."""

import sys

from fmagenre.audio.numba_cache import main

sys.exit(main())
