"""`python -m transferlab ...`: the `transferlab` command, for an environment whose scripts
folder is not on PATH."""

import sys

from transferlab.cli import main

sys.exit(main())
