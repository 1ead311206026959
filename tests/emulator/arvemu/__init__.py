"""An Arvados API server and Keep service emulator for the collection's tests and demo."""
from __future__ import annotations
