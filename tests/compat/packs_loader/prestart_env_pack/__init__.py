"""Reads, at import, the variable its prestartup script set."""
import os

SEEN_AT_IMPORT = os.environ.get("OPENCOMFY_TEST_PRESTART")


class PrestartEnvValue:
    CATEGORY = "tests/loader"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def run(self):
        return (str(SEEN_AT_IMPORT),)


NODE_CLASS_MAPPINGS = {"PrestartEnvValue": PrestartEnvValue}
