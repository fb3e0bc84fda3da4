"""``python -m exporter`` is the same program as ``veeam-em-exporter``."""

import sys

from exporter.cli import main

sys.exit(main())
