"""The ADE9000 driver suite, shipped in the firmware (hal/driver_suite.py) so that `meter hil run` runs it on a
meter; imported here for pytest (tests/unit/test_hal_driver.py, tests/hil/test_hal_driver_hil.py)."""
from hal.driver_suite import *  # noqa: F403
from hal.driver_suite import __all__  # noqa: F401
