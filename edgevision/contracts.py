"""What crosses a boundary, defined once: every module writes and reads these messages through these models.

- `ImagePrediction`: the scorer's answer (the Custom Vision prediction response);
- `CameraResult`: the camera's `output1` message (the answer plus what the frame was);
- `DisplayInput`: what the display needs of a message on its `input1` (the `predictions` only);
- `CaptureEvent`: the camera's `captures` message, one per stored frame;
- `CaptureSidecar`: the JSON stored beside a captured JPEG;
- `ErrorBody`: every HTTP error answer.

Readers call `parse`: a message that does not match raises `ContractError` with a one-line reason, which the
reader logs and counts; it never crashes a module. Writers build the model and send `encode(model)`. The
OpenAPI components (`openapi_schemas`) and the field tables in docs/architecture.md (`markdown`) are generated
from these models, so they cannot drift.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StrictStr, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from edgevision.errors import EdgeVisionError


class ContractError(EdgeVisionError, ValueError):
    """A message does not match its contract; the message says where, on one line."""


def iso_time(when: datetime, timespec: str = "microseconds") -> str:
    """ISO 8601 as the contracts write it: UTC as `Z`, a fixed number of fraction digits."""
    return when.isoformat(timespec=timespec).replace("+00:00", "Z")


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# Probabilities: a JSON number (never `true`), finite, within 0..1.
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
# Times keep the precision their writer gives them, so a message re-encoded is byte-identical.
MicroTime = Annotated[datetime, PlainSerializer(lambda d: iso_time(d, "microseconds"), return_type=str)]
MilliTime = Annotated[datetime, PlainSerializer(lambda d: iso_time(d, "milliseconds"), return_type=str)]
Count = Annotated[int, Field(ge=0, strict=True)]


class Contract(BaseModel):
    # Readers ignore fields they do not know: a newer writer may add some.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class BoundingBox(Contract):
    """A detection's box, as fractions of the image (classification models never send one)."""

    left: float = Field(description="Left edge, 0..1 of the width.")
    top: float = Field(description="Top edge, 0..1 of the height.")
    width: float = Field(description="Width, 0..1 of the image width.")
    height: float = Field(description="Height, 0..1 of the image height.")


class Prediction(Contract):
    """One `predictions[]` entry (field order = what the scorer writes)."""

    tagName: StrictStr = Field(description="The tag (label).")
    probability: Probability = Field(description="0..1.")
    tagId: StrictStr = Field("", description="Tag id when the model carries them, else empty.")
    boundingBox: BoundingBox | None = Field(None, description="Always null (classification).")


class ImagePrediction(Contract):
    """The scorer's answer to one image: the Custom Vision `ImagePrediction`."""

    id: StrictStr = Field(description="A new id for every prediction.", json_schema_extra={"format": "uuid"})
    project: StrictStr = Field(description="Project id from the model's metadata, else empty.")
    iteration: StrictStr = Field(description="Iteration id from the model's metadata, else empty.")
    created: MicroTime = Field(description="UTC time of the prediction (ISO 8601).")
    predictions: list[Prediction] = Field(
        description="Sorted by probability, highest first (the scorer's MAX_PREDICTIONS caps the list)."
    )


class CameraResult(ImagePrediction):
    """The camera's `output1` message: the scorer's answer (predictions cut to MESSAGE_TOP_N) plus the frame."""

    topTag: StrictStr = Field(description="The most probable tag (empty when the model answered no tag).")
    topProbability: Probability = Field(description="Its probability (a number; routes filter on it).")
    source: StrictStr = Field(description="The video source, credentials removed.")
    frame: Count = Field(description="Frame index in the source.")
    capturedAt: MilliTime = Field(description="When the frame was read (ISO 8601, UTC).")
    modelId: StrictStr = Field(description="The scorer's `X-Model-Id` (or the answer's iteration).")

    def properties(self) -> dict[str, str]:
        """Custom message properties routes can filter on without parsing the body."""
        return {"topTag": self.topTag, "topProbability": f"{self.topProbability:.6f}"}


class DisplayInput(Contract):
    """What the display reads of a message on `input1`: any scoring result (only `predictions` is required)."""

    predictions: list[Prediction] = Field(description="The predictions; the display shows the most probable.")


# A kept frame's file name in CAPTURE_DIR (`YYYY-MM-DD/<UTC time>_<frame>_<tag>.jpg`, its sidecar beside it
# as `.json`): the camera writes it, the portal and the captures tools read it.
CAPTURE_FILE_NAME = re.compile(r"^(\d{8}T\d{6}_\d{6}Z)_\d+_.*\.jpg$")
CAPTURE_TIME_FORMAT = "%Y%m%dT%H%M%S_%fZ"


class CaptureSidecar(Contract):
    """The JSON stored beside a captured JPEG (same name, `.json`)."""

    capturedAt: MilliTime = Field(description="When the frame was read (ISO 8601, UTC).")
    source: StrictStr = Field(description="The video source, credentials removed.")
    frame: Count = Field(description="Frame index in the source.")
    videoTime: float = Field(ge=0, description="Seconds into the source (a file's position, else since start).")
    width: Count = Field(description="JPEG width, pixels (the original frame, not the scored copy).")
    height: Count = Field(description="JPEG height, pixels.")
    matchedTag: StrictStr = Field(description="The CAPTURE_TAGS tag that made this frame kept.")
    matchedProbability: Probability = Field(description="Its probability.")
    topTag: StrictStr = Field(description="The most probable tag.")
    topProbability: Probability = Field(description="Its probability.")
    modelId: StrictStr = Field(description="The model that scored the frame.")
    predictions: list[Prediction] = Field(description="Top MESSAGE_TOP_N predictions, plus the matched one.")
    file: StrictStr = Field("", description="The JPEG's file name (set by the store).")


class CaptureEvent(Contract):
    """The camera's `captures` message: one per stored frame."""

    event: Literal["capture"] = Field("capture", description='Always `"capture"`.')
    file: StrictStr = Field(description="The JPEG, relative to CAPTURE_DIR (`YYYY-MM-DD/<name>.jpg`).")
    sidecar: StrictStr = Field(description="Its sidecar JSON, relative to CAPTURE_DIR.")
    topTag: StrictStr = Field(description="The most probable tag.")
    topProbability: Probability = Field(description="Its probability.")
    matchedTag: StrictStr = Field(description="The CAPTURE_TAGS tag that made this frame kept.")
    source: StrictStr = Field(description="The video source, credentials removed.")
    frame: Count = Field(description="Frame index in the source.")
    capturedAt: MilliTime = Field(description="When the frame was read (ISO 8601, UTC).")
    modelId: StrictStr = Field(description="The model that scored the frame.")

    @classmethod
    def of(cls, sidecar: CaptureSidecar, file: str, sidecar_file: str) -> CaptureEvent:
        return cls(
            file=file,
            sidecar=sidecar_file,
            **sidecar.model_dump(include={"topTag", "topProbability", "matchedTag", "source", "frame", "modelId"}),
            capturedAt=sidecar.capturedAt,
        )

    def properties(self) -> dict[str, str]:
        return {"matchedTag": self.matchedTag, "topTag": self.topTag}


class ErrorBody(Contract):
    """Every HTTP error answer (4xx/5xx), as Custom Vision answers them."""

    code: StrictStr = Field(description="A Custom Vision style code.", examples=["BadRequestImageFormat"])
    message: StrictStr = Field(description="What was wrong, on one line.")


RESULTS_OUTPUT = "output1"
CAPTURES_OUTPUT = "captures"
# The camera's outputs and their contracts (what the runtime's upstream log checks).
CAMERA_OUTPUTS: dict[str, type[Contract]] = {RESULTS_OUTPUT: CameraResult, CAPTURES_OUTPUT: CaptureEvent}


# -- reading and writing ------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """`data` (parsed JSON, or JSON text/bytes) as `model`; ContractError with a one-line reason if not."""
    try:
        if isinstance(data, (str, bytes, bytearray)):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise ContractError(f"not a valid {model.__name__}: {_reason(exc)}") from None


def encode(message: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a message (what writers send)."""
    return message.model_dump(mode="json")


def dumps(message: BaseModel, *, indent: int | None = None, ensure_ascii: bool = True) -> str:
    """The message as JSON text; compact unless `indent`."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(encode(message), separators=separators, indent=indent, ensure_ascii=ensure_ascii)


def _reason(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


# -- the scorer's answer as plain entries ---------------------------------------------------------------
#
# The camera reads an answer per frame, up to 1000 entries. As `Prediction` models they are 2000 objects the
# garbage collector tracks (the model and its fields-set), which made it run full collections every few frames
# (~1 ms a frame on 2 cores); plain dicts of strings and numbers are not tracked at all, and pydantic builds
# them faster than the models. `read_answer` checks every field of every entry by the same rules as
# `ImagePrediction` (the TypedDicts are made from the models' own fields, so they cannot drift) and returns
# dicts; `as_prediction` makes the model of an entry a message carries.


def _entries_of(model: type[Contract], **overrides: Any) -> Any:
    """A TypedDict with `model`'s fields, types and rules (a field with a default may be absent)."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = overrides.get(name, field.annotation)
        if field.metadata:
            annotation = Annotated[(annotation, *field.metadata)]
        fields[name] = annotation if field.is_required() else NotRequired[annotation]
    entries = TypedDict(f"{model.__name__}Entries", fields)  # type: ignore[operator]
    entries.__pydantic_config__ = model.model_config  # readers ignore fields they do not know
    return entries


PredictionEntry = _entries_of(Prediction)
ImagePredictionEntries = _entries_of(ImagePrediction, predictions=list[PredictionEntry])
_ANSWER_READER = TypeAdapter(ImagePredictionEntries)


def read_answer(data: str | bytes | bytearray) -> dict[str, Any]:
    """The scorer's answer (JSON text) checked as an `ImagePrediction`, with its entries as plain dicts;
    ContractError with the same one-line reason as `parse(ImagePrediction, data)` if it does not match."""
    try:
        return _ANSWER_READER.validate_json(data)
    except ValidationError as exc:
        raise ContractError(f"not a valid {ImagePrediction.__name__}: {_reason(exc)}") from None


def as_prediction(entry: dict[str, Any]) -> Prediction:
    """The model of an entry `read_answer` returned (already checked: built without validating again)."""
    return Prediction.model_construct(**entry)


# -- generated documentation --------------------------------------------------------------------------

# Name on the wire -> model; the order of docs/architecture.md.
MESSAGES: dict[str, type[Contract]] = {
    "scorer answer (`ImagePrediction`)": ImagePrediction,
    "`predictions[]` entry (`Prediction`)": Prediction,
    "camera `output1` (`CameraResult`)": CameraResult,
    "camera `captures` (`CaptureEvent`)": CaptureEvent,
    "capture sidecar (`CaptureSidecar`)": CaptureSidecar,
    "display `input1` (`DisplayInput`)": DisplayInput,
    "HTTP error (`ErrorBody`)": ErrorBody,
}
DOC_BEGIN = "<!-- contracts: generated from edgevision/contracts.py by scripts/contracts_doc.py -->"
DOC_END = "<!-- contracts: end -->"


def openapi_schemas() -> dict[str, dict[str, Any]]:
    """The OpenAPI 3.1 `components.schemas` of the scorer's answer and error body (and what they nest)."""
    schemas: dict[str, dict[str, Any]] = {}
    for model in (ImagePrediction, ErrorBody):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def markdown() -> str:
    """One field table per message, for docs/architecture.md (between DOC_BEGIN and DOC_END)."""
    parts = [DOC_BEGIN]
    for title, model in MESSAGES.items():
        parts += ["", f"**{title}**: {(model.__doc__ or '').strip()}", "", "| field | type | required | meaning |"]
        parts.append("|---|---|---|---|")
        for name, field in model.model_fields.items():
            required = "yes" if field.is_required() else f"no (`{json.dumps(encode_default(field.default))}`)"
            parts.append(f"| `{name}` | {_type_name(field.annotation)} | {required} | {field.description or ''} |")
    parts += ["", DOC_END]
    return "\n".join(parts)


def encode_default(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " or ".join(f"`{json.dumps(a)}`" for a in args)
    if origin is list:
        return f"array of {_type_name(args[0])}"
    if args:  # a union: X | None
        return " or ".join(_type_name(a) for a in args)
    names = {str: "string", float: "number", int: "integer", datetime: "date-time", type(None): "null"}
    return names.get(annotation) or getattr(annotation, "__name__", str(annotation))
