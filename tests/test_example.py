"""The example reproduces the seed notebook's printed output exactly."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "basic_components.py"

# The six lines printed by the `print(` cells of /work/shared/seed/0_basic_components.txt.
EXPECTED = (
    "{} MyParams(name='default', hash='fbfbde1db878403f89d2b0b9cdf4fbbd', overwrite=False, "
    "some_scalar_multiplier=1.0)\n"
    "{} MyParams(name='doubled', hash='ab202296761d2052e9b6b0376b46785b', overwrite=False, "
    "some_scalar_multiplier=2.0)\n"
    "{'initial_value': 5.0} {'initial_value': 10.0}\n"
    "{'initial_value': 10.0, 'final_value': 20.0}\n"
    "{'initial_value': 20.0, 'final_value': 80.0} MyParams(name='uber-double', "
    "hash='a4337711dc83557f076bccd2b015e2ad', overwrite=False, some_scalar_multiplier=4.0)\n"
    "{'all_final_values': {'doubled': 20.0, 'uber-double': 80.0}, 'maximum_value': 80.0}\n"
)


def test_example_prints_the_seed_output(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED
