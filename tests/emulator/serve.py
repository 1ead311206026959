"""Runs the Arvados emulator: python tests/emulator/serve.py --data-dir DIR --ready-file FILE [--port N]."""
from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from arvemu.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
