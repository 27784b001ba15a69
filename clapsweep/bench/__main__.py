"""`python -m clapsweep.bench train|data|curate|eval ...`: the bench commands on their own."""

import sys

from clapsweep.cli.bench import main

sys.exit(main())
