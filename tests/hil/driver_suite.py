"""The ADE9000 driver suite, shipped in the firmware (tools/hil_suite.py) so that `meter hil run` runs it on a
meter; imported here for pytest (tests/unit/test_hal_driver.py, tests/hil/test_hal_driver_hil.py)."""
from tools.hil_suite import *  # noqa: F403
from tools.hil_suite import __all__  # noqa: F401
