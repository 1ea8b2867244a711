"""Calls sys.exit() at import, as a pack with a failed dependency check sometimes does."""

import sys

sys.exit("missing requirements")
