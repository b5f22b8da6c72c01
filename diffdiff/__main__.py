"""`python -m diffdiff` runs the CLI."""

import sys

from diffdiff.cli.main import main

sys.exit(main())
