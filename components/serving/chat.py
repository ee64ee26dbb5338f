"""The OpenAI-compatible chat endpoint's request schema and its translation to an inspection.

The board is the first `image_url` content part (a data URL or bare base64), the
template the optional second one; the question is the text of the last user message. A wafer
line's model (named like any other: `defect-vlm-wafer`) takes its bin map as the one image.
"""
from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from components.serving.limits import InputError


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str


class Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    image_url: ImageURL | str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Part] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ...: accepted, not used
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    response_format: dict | None = None
    """{"type": "text"} (default): the answer as a sentence; {"type": "grammar"}: the answer
    grammar text (`[DEFECT] short [BOX] ...`, a wafer line's `[KIND] pattern [PATTERN] ...`);
    {"type": "json_object"}: the inspection as JSON."""


def _parts(m: Message) -> list[Part]:
    if isinstance(m.content, str):
        return [Part(type="text", text=m.content)]
    return m.content or []


def _images(m: Message) -> list[str]:
    out = []
    for p in _parts(m):
        if p.type == "image_url":
            if p.image_url is None:
                raise InputError(400, "an image_url part has no image_url.url", "bad_image_part")
            out.append(p.image_url if isinstance(p.image_url, str) else p.image_url.url)
    return out


def extract(req: ChatRequest) -> tuple[str, list[str]]:
    """(question, [board URL, optional template URL]) from the conversation."""
    if req.stream:
        raise InputError(400, "streaming is not supported: send stream=false", "stream_unsupported")
    users = [m for m in req.messages if m.role == "user"]
    if not users:
        raise InputError(400, "the conversation has no user message", "no_user_message")
    question = "\n".join(p.text or "" for p in _parts(users[-1]) if p.type == "text")
    # Follow-up questions may omit the picture: use the latest user message that had one.
    images = next((imgs for imgs in map(_images, reversed(users)) if imgs), [])
    if not images:
        raise InputError(400, "send the board as an image_url content part "
                              "(data:image/jpeg;base64,...)", "no_image")
    if len(images) > 2:
        raise InputError(400, f"{len(images)} images sent; send the board and at most one template",
                         "too_many_images")
    return question, images


FORMATS = ("text", "grammar", "json_object")


def content_format(req: ChatRequest) -> str:
    """The requested content format (see ChatRequest.response_format); a clear 400 for others."""
    kind = (req.response_format or {}).get("type", "text")
    if kind not in FORMATS:
        raise InputError(400, f"response_format type {kind!r} is not supported: use one of {', '.join(FORMATS)}",
                         "bad_response_format")
    return kind


def completion(inspection: dict, model_name: str, content: str = "text") -> dict:
    """An OpenAI chat.completion whose content is the answer in a sentence (content="text"),
    the answer grammar text ("grammar") or the inspection as JSON ("json_object");
    `inspection` always carries the structured answer (same fields as /v1/inspect)."""
    import json

    # A boxes line's answer_text is its grammar text; a wafer line's is the sentence, beside `grammar`.
    text = {"text": inspection["message"], "grammar": inspection.get("grammar", inspection["answer_text"]),
            "json_object": json.dumps({k: v for k, v in inspection.items() if k != "model"})}[content]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "inspection": inspection,
    }
