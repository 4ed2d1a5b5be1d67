"""``python -m fmagenre.numba_cache``: fill numba's cache with the extractor's kernels."""

import sys

from fmagenre.numba_cache import main

sys.exit(main())
