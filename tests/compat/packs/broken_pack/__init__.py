"""Needs a dependency that is not installed: the loader must report and skip it."""

import opencomfy_test_missing_dependency  # noqa: F401

NODE_CLASS_MAPPINGS = {}
