"""`python -m benchmarks [--quick]`: see `benchmarks.run`."""

import sys

from .run import main

sys.exit(main())
