"""`python -m nanofm.cli`: the `nanofm` command."""

import sys

from nanofm.cli import main

sys.exit(main())
