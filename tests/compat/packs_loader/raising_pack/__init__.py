raise ValueError("raising_pack refuses to load on purpose")
