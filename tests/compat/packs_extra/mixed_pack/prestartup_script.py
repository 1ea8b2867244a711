import os

os.environ["MIXED_PACK_PRESTARTUP"] = "ran"
