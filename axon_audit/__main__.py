"""`python -m axon_audit …` runs the `axon-audit` command line."""

import sys

from axon_audit.app.cli import main

sys.exit(main())
