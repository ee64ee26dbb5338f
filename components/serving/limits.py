"""Input checks for the service: every bad input becomes an InputError with a 4xx status.

Images are decoded from bytes in memory; nothing a request sends is written to disk.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image

from components.config import ServeConfig

# Only plain raster formats: PIL's other openers (EPS runs Ghostscript, ...) are not needed here.
FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*?;base64,(?P<data>.*)$", re.S)


class InputError(ValueError):
    """A request the service refuses; `status` is the HTTP status, `code` a short machine name."""

    def __init__(self, status: int, message: str, code: str = "invalid_request"):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def max_bytes(limits: ServeConfig) -> int:
    return int(limits.max_upload_mb * 1024 * 1024)


def body_limit(limits: ServeConfig) -> int:
    """Largest request body: board + template as base64 JSON (4/3 larger) plus room for the rest."""
    return int(2 * max_bytes(limits) * 4 / 3) + 256 * 1024


def check_question(question: str | None, limits: ServeConfig) -> str:
    text = (question or "").strip()
    if not text:
        raise InputError(400, "the question is empty: ask something, e.g. 'Describe all defects on this board.'",
                         "empty_question")
    if len(text) > limits.max_question_chars:
        raise InputError(400, f"the question is {len(text)} characters long; the limit is "
                              f"{limits.max_question_chars}", "question_too_long")
    return text


def read_image(data: bytes, what: str, limits: ServeConfig) -> Image.Image:
    """Decode one uploaded image fully, refusing empty, oversized, non-image and truncated data."""
    if not data:
        raise InputError(400, f"the {what} is empty (0 bytes)", "empty_image")
    if len(data) > max_bytes(limits):
        raise InputError(413, f"the {what} is {len(data) / 1e6:.1f} MB; the limit is "
                              f"{limits.max_upload_mb:g} MB", "image_too_large")
    try:
        with warnings.catch_warnings():
            # Our pixel limit is checked below, before any pixel is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise InputError(413, f"the {what} has too many pixels: {exc}", "too_many_pixels") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(400, f"the {what} is not an image this service reads "
                              f"({', '.join(FORMATS)})", "not_an_image") from exc
    _check_pixels(img, what, limits)
    try:
        img.load()  # decode now: a truncated file must fail here, not inside the model
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(400, f"the {what} could not be decoded (truncated or corrupt file): {exc}",
                         "corrupt_image") from exc
    return img


def _check_pixels(img: Image.Image, what: str, limits: ServeConfig) -> None:
    w, h = img.size
    if w < 1 or h < 1:
        raise InputError(400, f"the {what} has no pixels ({w}x{h})", "corrupt_image")
    if w * h > limits.max_pixels:
        raise InputError(413, f"the {what} is {w}x{h} = {w * h} pixels; the limit is {limits.max_pixels}",
                         "too_many_pixels")


def check_pair(board: Image.Image, template: Image.Image | None) -> None:
    if template is not None and template.size != board.size:
        raise InputError(400, f"the template is {template.size[0]}x{template.size[1]} but the board is "
                              f"{board.size[0]}x{board.size[1]}: they must be aligned scans of the same size",
                         "template_size_mismatch")


def decode_data_url(url: str, what: str, limits: ServeConfig) -> bytes:
    """Bytes of a `data:image/...;base64,...` URL (or bare base64). Remote URLs are refused:
    the service never fetches anything a request names."""
    text = (url or "").strip()
    if text.startswith(("http://", "https://", "file:", "ftp:")):
        raise InputError(400, f"the {what} must be sent inline as a data URL (data:image/png;base64,...); "
                              "this service does not fetch URLs", "remote_image_refused")
    m = _DATA_URL.match(text)
    if text.startswith("data:") and not m:
        raise InputError(400, f"the {what} data URL must be base64-encoded (data:<type>;base64,<data>)",
                         "bad_data_url")
    payload = m["data"] if m else text
    if len(payload) * 3 // 4 > max_bytes(limits):
        raise InputError(413, f"the {what} is over the {limits.max_upload_mb:g} MB limit", "image_too_large")
    try:
        return base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(400, f"the {what} is not valid base64: {exc}", "bad_base64") from exc
