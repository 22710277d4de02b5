"""``python -m firmware.cli``: the ``meter`` command."""
import sys

from firmware.cli import main

sys.exit(main())
