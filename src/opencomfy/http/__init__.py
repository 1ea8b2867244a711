"""aiohttp handlers, one module per area of the spec. Each module exposes `setup(app)`."""
