"""A test pack: a node that asks for a secret and reports only a digest of what it got."""

import hashlib

from opencomfy.secrets.node_access import SecretUnavailable, get_secret


class TestSecretDigest:
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "run"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": "token"})}}

    @classmethod
    def IS_CHANGED(cls, name):
        # Never cached: the value depends on whose job runs it (the engine's cache is shared).
        return float("nan")

    def run(self, name):
        try:
            found = hashlib.sha256(get_secret(name).encode()).hexdigest()[:16]
        except SecretUnavailable:
            found = "missing"
        return {"ui": {"text": [found]}}


NODE_CLASS_MAPPINGS = {"TestSecretDigest": TestSecretDigest}
