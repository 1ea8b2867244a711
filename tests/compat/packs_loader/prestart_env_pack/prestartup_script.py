# Runs before any pack is imported: packs use this to set environment variables.
import os

os.environ["OPENCOMFY_TEST_PRESTART"] = "set-by-prestartup"
