"""Its prestartup script fails; the pack itself still loads."""


class PrestartFailStillLoads:
    CATEGORY = "tests/loader"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def run(self):
        return (7,)


NODE_CLASS_MAPPINGS = {"PrestartFailStillLoads": PrestartFailStillLoads}
