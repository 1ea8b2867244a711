"""V3 socket types: ``io.Int.Input(...)``, ``io.Image.Output(...)``, ``io.Custom("X")``.

Each type is a class with an ``io_type`` name and nested ``Input`` / ``Output`` classes whose
``as_dict()`` gives the options dict ComfyUI reports in object_info. Options left as None are
omitted; False values are kept (ComfyUI reports ``"multiline": false``).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal


def prune_dict(d: dict) -> dict:
    """Drop the entries whose value is None."""
    return {k: v for k, v in d.items() if v is not None}


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


class RemoteOptions:
    """Options of a combo whose values the frontend fetches from a route."""

    def __init__(self, route: str, refresh_button: bool,
                 control_after_refresh: Literal["first", "last"] = "first",
                 timeout: int | None = None, max_retries: int | None = None,
                 refresh: int | None = None) -> None:
        self.route = route
        self.refresh_button = refresh_button
        self.control_after_refresh = control_after_refresh
        self.timeout = timeout
        self.max_retries = max_retries
        self.refresh = refresh

    def as_dict(self) -> dict:
        return prune_dict({
            "route": self.route, "refresh_button": self.refresh_button,
            "control_after_refresh": self.control_after_refresh, "timeout": self.timeout,
            "max_retries": self.max_retries, "refresh": self.refresh,
        })


class _ComfyType:
    """Base of every socket type; ``io_type`` is the type name links are matched on."""

    Type = Any
    io_type: str = None  # type: ignore[assignment]


class _IOBase:
    """Base of Input and Output; ``Parent`` is the socket type class it belongs to."""

    Parent: type[_ComfyType] = None  # type: ignore[assignment]

    def validate(self) -> None:
        pass

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    @property
    def Type(self):  # noqa: N802 (ComfyUI's name)
        return self.Parent.Type


class Input(_IOBase):
    """A node input (a socket, possibly lazy or optional)."""

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                 tooltip: str | None = None, lazy: bool | None = None, extra_dict: dict | None = None,
                 raw_link: bool | None = None, advanced: bool | None = None,
                 **newer_options) -> None:
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}
        self.rawLink = raw_link
        self.advanced = advanced
        # Options of ComfyUI versions newer than the one we follow: accepted, not reported,
        # so that a pack written for a newer ComfyUI still loads.
        self.newer_options = newer_options

    def as_dict(self) -> dict:
        return prune_dict({
            "display_name": self.display_name, "optional": self.optional,
            "tooltip": self.tooltip, "lazy": self.lazy, "rawLink": self.rawLink,
            "advanced": self.advanced,
        }) | prune_dict(self.extra_dict)

    def get_io_type(self) -> str:
        return self.io_type

    def get_all(self) -> list["Input"]:
        return [self]


class WidgetInput(Input):
    """An input that the frontend shows as a widget (a default value, maybe a socket)."""

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                 tooltip: str | None = None, lazy: bool | None = None, default: Any = None,
                 socketless: bool | None = None, widget_type: str | None = None,
                 force_input: bool | None = None, extra_dict: dict | None = None,
                 raw_link: bool | None = None,
                 **kwargs) -> None:
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, **kwargs)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def as_dict(self) -> dict:
        return super().as_dict() | prune_dict({
            "default": self.default, "socketless": self.socketless,
            "widgetType": self.widget_type, "forceInput": self.force_input,
        })

    def get_io_type(self) -> str:
        return self.widget_type if self.widget_type is not None else super().get_io_type()


class Output(_IOBase):
    """A node output."""

    def __init__(self, id: str | None = None, display_name: str | None = None,
                 tooltip: str | None = None, is_output_list: bool = False) -> None:
        self.id = id
        # ComfyUI names an output by its id when no display name is given.
        self.display_name = display_name if display_name else id
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def as_dict(self) -> dict:
        return prune_dict({"display_name": self.display_name, "tooltip": self.tooltip,
                           "is_output_list": self.is_output_list})

    def get_io_type(self) -> str:
        return self.io_type


class ComfyTypeI(_ComfyType):
    """A socket type with only an Input class."""

    class Input(Input):
        pass


class ComfyTypeIO(ComfyTypeI):
    """A socket type with Input and Output classes."""

    class Output(Output):
        pass


def _subclass(base: type, name: str) -> type:
    return type(name, (base,), {"__module__": base.__module__, "__qualname__": base.__qualname__})


def comfytype(io_type: str, **_kwargs):
    """Class decorator: bind ``io_type`` to a socket type and give it its own Input/Output.

    The nested classes are re-derived per type so that setting ``Parent`` on one type's Input
    never changes another type's.
    """

    def decorate(cls: type) -> type:
        if not issubclass(cls, _ComfyType):
            cls = type(cls.__name__, (cls, ComfyTypeIO), {"__module__": cls.__module__,
                                                          "__doc__": cls.__doc__})
        cls.io_type = io_type
        for nested in ("Input", "Output"):
            inner = cls.__dict__.get(nested) or getattr(cls, nested, None)
            if inner is None:
                continue
            if nested not in cls.__dict__:
                inner = _subclass(inner, nested)
                setattr(cls, nested, inner)
            inner.Parent = cls
        return cls

    return decorate


def Custom(io_type: str) -> type[ComfyTypeIO]:  # noqa: N802 (ComfyUI's name)
    """A socket type for a custom type name (``io.Custom("MY_TYPE").Input("x")``)."""

    @comfytype(io_type=io_type)
    class CustomComfyType(ComfyTypeIO):
        pass

    return CustomComfyType


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: bool | None = None,
                     label_on: str | None = None, label_off: str | None = None,
                     socketless: bool | None = None, force_input: bool | None = None,
                     extra_dict: dict | None = None, raw_link: bool | None = None,
                     **kwargs) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link, **kwargs)
            self.label_on = label_on
            self.label_off = label_off

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({"label_on": self.label_on,
                                                   "label_off": self.label_off})


@comfytype(io_type="INT")
class Int(ComfyTypeIO):
    Type = int

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: int | None = None,
                     min: int | None = None, max: int | None = None, step: int | None = None,
                     control_after_generate: bool | None = None,
                     display_mode: NumberDisplay | None = None, socketless: bool | None = None,
                     force_input: bool | None = None, extra_dict: dict | None = None,
                     raw_link: bool | None = None,
                     **kwargs) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link, **kwargs)
            self.min, self.max, self.step = min, max, step
            self.control_after_generate = control_after_generate
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "min": self.min, "max": self.max, "step": self.step,
                "control_after_generate": self.control_after_generate,
                "display": _enum_value(self.display_mode),
            })


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    Type = float

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None,
                     default: float | None = None, min: float | None = None,
                     max: float | None = None, step: float | None = None,
                     round: float | None = None, display_mode: NumberDisplay | None = None,
                     socketless: bool | None = None, force_input: bool | None = None,
                     extra_dict: dict | None = None, raw_link: bool | None = None,
                     **kwargs) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link, **kwargs)
            self.min, self.max, self.step, self.round = min, max, step, round
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "min": self.min, "max": self.max, "step": self.step, "round": self.round,
                "display": _enum_value(self.display_mode),
            })


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, multiline: bool = False,
                     placeholder: str | None = None, default: str | None = None,
                     dynamic_prompts: bool | None = None, socketless: bool | None = None,
                     force_input: bool | None = None, extra_dict: dict | None = None,
                     raw_link: bool | None = None,
                     **kwargs) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link, **kwargs)
            self.multiline = multiline
            self.placeholder = placeholder
            self.dynamic_prompts = dynamic_prompts

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "multiline": self.multiline, "placeholder": self.placeholder,
                "dynamicPrompts": self.dynamic_prompts,
            })


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        """A dropdown; ``options`` may be a list or an Enum class."""

        def __init__(self, id: str, options=None, display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     default=None, control_after_generate: bool | None = None,
                     upload: UploadType | None = None, image_folder: FolderType | None = None,
                     remote: RemoteOptions | None = None, socketless: bool | None = None,
                     extra_dict: dict | None = None, raw_link: bool | None = None,
                     **kwargs) -> None:
            if isinstance(options, type) and issubclass(options, Enum):
                options = [member.value for member in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             None, extra_dict, raw_link, **kwargs)
            self.multiselect = False
            self.options = options
            self.control_after_generate = control_after_generate
            self.upload = upload
            self.image_folder = image_folder
            self.remote = remote

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "multiselect": self.multiselect,
                "options": self.options,
                "control_after_generate": self.control_after_generate,
                **({self.upload.value: True} if self.upload is not None else {}),
                "image_folder": _enum_value(self.image_folder),
                "remote": self.remote.as_dict() if self.remote else None,
            })

    class Output(Output):
        def __init__(self, id: str | None = None, display_name: str | None = None,
                     options: list | None = None, tooltip: str | None = None,
                     is_output_list: bool = False) -> None:
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = options if options is not None else []


@comfytype(io_type="COMBO")
class MultiCombo(ComfyTypeI):
    """A dropdown where several values can be chosen."""

    Type = list

    class Input(Combo.Input):
        def __init__(self, id: str, options, display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     default=None, placeholder: str | None = None, chip: bool | None = None,
                     control_after_generate: bool | None = None, socketless: bool | None = None,
                     extra_dict: dict | None = None, raw_link: bool | None = None,
                     **kwargs) -> None:
            super().__init__(id, options, display_name, optional, tooltip, lazy, default,
                             control_after_generate, socketless=socketless,
                             extra_dict=extra_dict, raw_link=raw_link, **kwargs)
            self.multiselect = True
            self.placeholder = placeholder
            self.chip = chip

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "multi_select": self.multiselect, "placeholder": self.placeholder,
                "chip": self.chip,
            })


@comfytype(io_type="WEBCAM")
class Webcam(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: str | None = None,
                     socketless: bool | None = None, extra_dict: dict | None = None,
                     raw_link: bool | None = None,
                     **kwargs) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             None, extra_dict, raw_link, **kwargs)


def _enum_value(value):
    return value.value if isinstance(value, Enum) else value


# Socket types with nothing but a name: (class name, io_type).
_PLAIN_TYPES = (
    ("Image", "IMAGE"), ("WanCameraEmbedding", "WAN_CAMERA_EMBEDDING"), ("Mask", "MASK"),
    ("Latent", "LATENT"), ("Conditioning", "CONDITIONING"), ("Sampler", "SAMPLER"),
    ("Sigmas", "SIGMAS"), ("Noise", "NOISE"), ("Guider", "GUIDER"), ("Clip", "CLIP"),
    ("ControlNet", "CONTROL_NET"), ("Vae", "VAE"), ("Model", "MODEL"),
    ("ClipVision", "CLIP_VISION"), ("ClipVisionOutput", "CLIP_VISION_OUTPUT"),
    ("AudioEncoder", "AUDIO_ENCODER"), ("AudioEncoderOutput", "AUDIO_ENCODER_OUTPUT"),
    ("StyleModel", "STYLE_MODEL"), ("Gligen", "GLIGEN"), ("UpscaleModel", "UPSCALE_MODEL"),
    ("LatentUpscaleModel", "LATENT_UPSCALE_MODEL"), ("Audio", "AUDIO"), ("Video", "VIDEO"),
    ("SVG", "SVG"), ("LoraModel", "LORA_MODEL"), ("LossMap", "LOSS_MAP"), ("Voxel", "VOXEL"),
    ("Mesh", "MESH"), ("Hooks", "HOOKS"), ("HookKeyframes", "HOOK_KEYFRAMES"),
    ("TimestepsRange", "TIMESTEPS_RANGE"), ("LatentOperation", "LATENT_OPERATION"),
    ("FlowControl", "FLOW_CONTROL"), ("Accumulation", "ACCUMULATION"),
    ("Load3DCamera", "LOAD3D_CAMERA"), ("Load3D", "LOAD_3D"),
    ("Load3DAnimation", "LOAD_3D_ANIMATION"), ("Photomaker", "PHOTOMAKER"), ("Point", "POINT"),
    ("FaceAnalysis", "FACE_ANALYSIS"), ("BBOX", "BBOX"), ("SEGS", "SEGS"), ("AnyType", "*"),
    ("MODEL_PATCH", "MODEL_PATCH"), ("Tracks", "TRACKS"),
)

PLAIN_TYPE_NAMES = tuple(name for name, _ in _PLAIN_TYPES)

# The loop below binds these names at import; this declaration tells the type checker about the
# one our own modules reach through the module (``_io_types.AnyType``).
AnyType: type[ComfyTypeIO]

for _name, _io_type in _PLAIN_TYPES:
    globals()[_name] = comfytype(io_type=_io_type)(
        type(_name, (ComfyTypeIO,), {"__module__": __name__, "__qualname__": _name}))
del _name, _io_type


__all__ = [
    "FolderType", "UploadType", "NumberDisplay", "RemoteOptions", "Input", "WidgetInput",
    "Output", "ComfyTypeI", "ComfyTypeIO", "comfytype", "Custom", "Boolean", "Int", "Float",
    "String", "Combo", "MultiCombo", "Webcam", "prune_dict", "PLAIN_TYPE_NAMES",
    *PLAIN_TYPE_NAMES,
]
