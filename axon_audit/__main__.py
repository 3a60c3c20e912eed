"""`python -m axon_audit …` runs the `axon-audit` command line."""

import sys

from ._cli import main

sys.exit(main())
