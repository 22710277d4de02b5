import sys

from tools.image.cli import main

sys.exit(main())
