"""The Camtrap DP 1.0.2 profile and table schemas, bundled so packages validate offline (see README.md)."""

from pathlib import Path

SCHEMAS_DIR = Path(__file__).resolve().parent
