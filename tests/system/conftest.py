"""System tests (STYLE 38): separate scripts that start, kill and restart the
real binary. They reuse the helpers of the API suite (tests/api/fvtest.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))


def pytest_configure(config):
    config.addinivalue_line("filterwarnings",
                            "ignore::urllib3.exceptions.InsecureRequestWarning")
    config.addinivalue_line("markers", "local: needs the local binary and data dir")
