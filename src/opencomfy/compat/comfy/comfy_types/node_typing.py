"""ComfyUI's ``comfy.comfy_types.node_typing``: the IO type names and V1 node typing helpers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import Literal, TypedDict

from typing_extensions import NotRequired


class StrEnum(str, Enum):
    """A str enum whose members compare, hash and print as their value."""

    def __str__(self) -> str:
        return self.value


class IO(StrEnum):
    """Node input/output type names.

    Comparison with ``!=`` is how ComfyUI's validation matches a link's type against an input:
    ``*`` matches anything, and comma-separated type sets match when one is a subset of the
    other (``"INT" != IO.NUMBER`` is False).
    """

    STRING = "STRING"
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    LORA_MODEL = "LORA_MODEL"
    LOSS_MAP = "LOSS_MAP"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    AUDIO = "AUDIO"
    WEBCAM = "WEBCAM"
    POINT = "POINT"
    FACE_ANALYSIS = "FACE_ANALYSIS"
    BBOX = "BBOX"
    SEGS = "SEGS"
    VIDEO = "VIDEO"

    ANY = "*"
    """Matches any type (the engine accepts any link into it)."""
    NUMBER = "FLOAT,INT"
    """A float or an int."""
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"
    """A primitive widget value."""

    def __ne__(self, value: object) -> bool:
        if self == "*" or value == "*":
            return False
        if not isinstance(value, str):
            return True
        mine = frozenset(self.split(","))
        theirs = frozenset(value.split(","))
        return not (mine <= theirs or theirs <= mine)

    __hash__ = str.__hash__


class RemoteInputOptions(TypedDict):
    route: str
    refresh: NotRequired[int]
    response_key: NotRequired[str]
    query_params: NotRequired[dict[str, str]]
    refresh_button: NotRequired[bool]
    control_after_refresh: NotRequired[Literal["first", "last"]]
    timeout: NotRequired[int]
    max_retries: NotRequired[int]


class MultiSelectOptions(TypedDict):
    placeholder: NotRequired[str]
    chip: NotRequired[bool]


class InputTypeOptions(TypedDict):
    """The options dict of one V1 input (``("INT", {...})``)."""

    default: NotRequired[bool | str | float | int | list | tuple]
    defaultInput: NotRequired[bool]
    forceInput: NotRequired[bool]
    lazy: NotRequired[bool]
    rawLink: NotRequired[bool]
    tooltip: NotRequired[str]
    min: NotRequired[float]
    max: NotRequired[float]
    step: NotRequired[float]
    round: NotRequired[float]
    label_on: NotRequired[str]
    label_off: NotRequired[str]
    multiline: NotRequired[bool]
    placeholder: NotRequired[str]
    dynamicPrompts: NotRequired[bool]
    image_upload: NotRequired[bool]
    image_folder: NotRequired[Literal["input", "output", "temp"]]
    remote: NotRequired[RemoteInputOptions]
    control_after_generate: NotRequired[bool]
    display: NotRequired[Literal["slider", "number", "color"]]
    multi_select: NotRequired[MultiSelectOptions]


class HiddenInputTypeDict(TypedDict):
    node_id: NotRequired[Literal["UNIQUE_ID"]]
    unique_id: NotRequired[Literal["UNIQUE_ID"]]
    prompt: NotRequired[Literal["PROMPT"]]
    extra_pnginfo: NotRequired[Literal["EXTRA_PNGINFO"]]
    dynprompt: NotRequired[Literal["DYNPROMPT"]]


class InputTypeDict(TypedDict):
    """What ``INPUT_TYPES()`` returns."""

    required: NotRequired[dict[str, tuple[IO | str | list, InputTypeOptions]]]
    optional: NotRequired[dict[str, tuple[IO | str | list, InputTypeOptions]]]
    hidden: NotRequired[HiddenInputTypeDict]


class ComfyNodeABC(ABC):
    """Optional base class for V1 nodes; documents the class attributes the engine reads."""

    DESCRIPTION: str
    CATEGORY: str
    EXPERIMENTAL: bool
    DEPRECATED: bool
    API_NODE: bool

    @classmethod
    @abstractmethod
    def INPUT_TYPES(s) -> InputTypeDict:  # noqa: N802 (ComfyUI's name)
        """The node's inputs: ``{"required": {...}, "optional": {...}, "hidden": {...}}``."""

    OUTPUT_NODE: bool
    INPUT_IS_LIST: bool
    OUTPUT_IS_LIST: tuple[bool, ...]
    RETURN_TYPES: tuple[IO | str, ...]
    RETURN_NAMES: tuple[str, ...]
    OUTPUT_TOOLTIPS: tuple[str, ...]
    FUNCTION: str


class CheckLazyMixin:
    """A default ``check_lazy_status``: ask for every lazy input that is still unevaluated."""

    def check_lazy_status(self, **kwargs) -> list[str]:
        need = [name for name in kwargs if kwargs[name] is None]
        return need


class FileLocator(TypedDict):
    """Where a file lives, as ComfyUI's UI outputs name it."""

    filename: str
    subfolder: str
    type: Literal["input", "output", "temp"]


__all__ = [
    "IO", "InputTypeOptions", "InputTypeDict", "HiddenInputTypeDict", "ComfyNodeABC",
    "CheckLazyMixin", "FileLocator", "RemoteInputOptions", "MultiSelectOptions", "StrEnum",
]
