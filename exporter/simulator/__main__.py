"""`python -m exporter.simulator` runs the standalone simulator."""

import sys

from exporter.simulator.cli import main

sys.exit(main())
