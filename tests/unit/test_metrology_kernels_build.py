"""The metrology C kernels compile without a warning for the meter (aarch64, Debian's gcc) and for x86-64, with
setup.py's flags, with numpy's C API for the arguments (as setup.py builds them) and without it (a build with no
numpy): a warning there is a defect the other target's build may not show."""
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy
import pytest

SOURCES = sorted((Path(__file__).resolve().parents[2] / "metrology" / "_kernels").glob("*.c"))


@pytest.mark.parametrize("numpy_api", [True, False])
@pytest.mark.parametrize("compiler", ["aarch64-linux-gnu-gcc", "gcc"])
def test_the_kernels_compile_without_a_warning(compiler, numpy_api, tmp_path):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed (.ci/run installs it)")
    api = ["-DKERNELS_NUMPY_API=1", f"-I{numpy.get_include()}"] if numpy_api else []
    for source in SOURCES:
        done = subprocess.run([compiler, "-O3", "-ffp-contract=off", "-Wall", "-Werror", "-fPIC", *api,
                               f"-I{sysconfig.get_paths()['include']}", "-c", str(source), "-o",
                               str(tmp_path / f"{source.stem}.o")], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{source.name}: {done.stderr[-3000:]}"
