"""`python -m clapsweep.bench train|data|curate|eval ...`: the bench commands on their own."""

import sys

from clapsweep.bench.cli import main

sys.exit(main())
