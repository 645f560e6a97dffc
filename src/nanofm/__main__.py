"""`python -m nanofm ...` and `torchrun ... -m nanofm train ...`."""

import sys

from nanofm.cli import main

sys.exit(main())
