CATEGORY = "relative_pack"
OFFSET = 100
