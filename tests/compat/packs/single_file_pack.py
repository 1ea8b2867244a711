"""A pack that is one .py file."""


class SingleFileHello:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": "world"})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "single_file"

    def run(self, name):
        return (f"hello {name}",)


NODE_CLASS_MAPPINGS = {"SingleFileHello": SingleFileHello}
