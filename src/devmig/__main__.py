"""`python -m devmig`."""

import sys

from devmig.cli import main

sys.exit(main())
