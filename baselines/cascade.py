"""Cascade "Sparkles + GPT-4o + LISA" (docs/model.md): describer -> structurer -> referring segmenter.

Three stages behind small interfaces, so each can be swapped:

1. **Describer** (``describe(images, question) -> str``): answers the multi-image question in free
   text. :class:`ChatDescriber` sends the images (PNG data URLs, referenced Sparkles-style as
   ``IMAGE#1``, ``IMAGE#2``) and the question to any OpenAI-compatible chat-completions endpoint;
   serve SparklesChat (or any multi-image chat model) behind one to reproduce the paper's row.
2. **Structurer** (``structure(question, description, k, task) -> Structure``): turns the free text into
   per-image lists. :class:`ChatStructurer` asks a chat model (GPT-4o in the paper) for JSON
   ``{"common_object", "objects", "common_parts", "unique_parts"}``, validates it, and re-asks with the
   validation error on malformed answers (``--structure-retries``).
3. **Segmenter** (``segment(image, name) -> bool HxW mask or None``): a single-image referring
   segmenter called once per listed name and image (LISA with "Can you segment the {name} in this
   image?" in the paper). ``--segmenter lisa --segmenter-model DIR`` (or ``--segmenter-checkpoint``
   LISA-7B-v1) uses :class:`baselines.multi_image_llava.LisaSegmenter`; ``--segmenter MODULE:FACTORY``
   loads any other (``FACTORY(args)`` returns the segmenter).

:class:`ChatClient` is an httpx chat-completions client with a per-request timeout and retries on
timeouts, connection errors, 429 and 5xx. Each endpoint gets only its own key, read from
the environment variable its own option names (``--describer-key-env``, none by default: the
describer is usually a self-hosted or third-party Sparkles server that must never see the OpenAI
key; ``--structurer-key-env``, default ``OPENAI_API_KEY``); keys are never written anywhere.

A sample whose structure cannot be obtained gets an empty prediction. Because an unreachable
endpoint would otherwise turn a whole split into empty predictions that still "succeed", the run
stops after ``--max-consecutive-failures`` endpoint failures in a row, and fails (exit 2, the
predictions still written for inspection) when more than ``--max-failed-share`` of the samples got
an empty prediction.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import io
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from baselines.common import Group, compose
from baselines.errors import BaselineError
from mixedparts.argtypes import fraction, positive_int

LISA_PROMPT = "Can you segment the {name} in this image?"


class ChatError(BaselineError):
    """The chat endpoint could not be reached or kept failing."""


class StructureError(BaselineError):
    """The structurer's answer stayed malformed after every retry."""


class ChatClient:
    """POST ``{base_url}/chat/completions``; returns the first choice's message content.

    Timeouts, lost connections, 429 and 5xx are retried ``retries`` times (:mod:`mixedparts.http_retry`);
    any other refusal, and a reply that is not a chat completion, fail at once.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 2, backoff: float = 1.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.timeout = model, api_key, timeout
        self.retries, self.backoff = retries, backoff
        self._client = None

    def complete(self, messages: list[dict], *, json_mode: bool = False, max_tokens: int | None = None) -> str:
        import httpx

        from mixedparts.http_retry import SERVER_ERRORS, retrying_client

        body = {"model": self.model, "messages": messages, "temperature": 0}
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        if max_tokens:
            body["max_tokens"] = max_tokens
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        if self._client is None:  # one connection pool per endpoint, kept for the run
            self._client = retrying_client(self.retries, self.backoff, statuses=(429, *SERVER_ERRORS),
                                           timeout=self.timeout)
        gave_up = f"{self.url}: gave up after {self.retries + 1} tries"
        try:
            response = self._client.post(self.url, json=body, headers=headers)
        except httpx.TimeoutException as error:
            raise ChatError(f"{gave_up}: no answer within {self.timeout:g} s ({error})") from None
        except httpx.ConnectError as error:
            raise ChatError(f"{gave_up}: cannot connect: {error}") from None
        except httpx.HTTPError as error:
            raise ChatError(f"{gave_up}: connection lost: {error}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise ChatError(f"{gave_up}: HTTP {response.status_code}: {response.text[:200]}")
        if not response.is_success:
            raise ChatError(f"{self.url}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except ValueError as error:
            raise ChatError(f"{self.url}: unreadable reply: {error}") from None
        except (KeyError, IndexError, TypeError):
            raise ChatError(f"{self.url}: reply without choices[0].message.content: {response.text[:200]}") from None
        if not isinstance(content, str):
            raise ChatError(f"{self.url}: message content is not text")
        return content


def data_url(image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ------------------------------------------------------------------ stage 1: describer


class Describer(Protocol):
    def describe(self, images: Sequence, question: str) -> str: ...


class ChatDescriber:
    """A multi-image chat model; images referenced Sparkles-style as IMAGE#1, IMAGE#2, ..."""

    def __init__(self, client: ChatClient):
        self.client = client

    def describe(self, images: Sequence, question: str) -> str:
        content: list[dict] = []
        for i, image in enumerate(images, 1):
            content.append({"type": "text", "text": f"IMAGE#{i}"})
            content.append({"type": "image_url", "image_url": {"url": data_url(image)}})
        content.append({"type": "text", "text": question.replace("these images", "these images (IMAGE#1 ... IMAGE#"
                                                                 f"{len(images)})", 1)})
        return self.client.complete([{"role": "user", "content": content}])


# ------------------------------------------------------------------ stage 2: structurer


@dataclass
class Structure:
    common_object: str | None = None
    objects: list[str | None] = field(default_factory=list)
    common_parts: list[str] = field(default_factory=list)
    unique_parts: list[list[str]] = field(default_factory=list)


STRUCTURE_PROMPT = """You turn a free-text answer about {k} images into JSON. The question was:
{question}
The answer was:
{description}

Reply with one JSON object and nothing else, with exactly these keys:
"common_object": the object name all images share (a short noun, no article), or null;
"objects": a list of {k} entries, the object name in each image in order (null if unknown);
"common_parts": a list of part names present on the objects of all images;
"unique_parts": a list of {k} lists, the part names found only on that image's object.
Use bare lowercase names without articles ("leg", not "the legs")."""


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where} must be a non-empty string")
    name = re.sub(r"^(the|a|an)\s+", "", value.strip().lower())
    return name


def parse_structure(text: str, k: int) -> Structure:
    """Validate a structurer answer; ``ValueError`` says what is wrong (fed back on retry)."""
    stripped = text.strip()
    fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", stripped, re.S)
    if fence:
        stripped = fence.group(1)
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError("the answer must be a JSON object")
    missing = {"common_object", "objects", "common_parts", "unique_parts"} - set(data)
    if missing:
        raise ValueError(f"missing keys: {', '.join(sorted(missing))}")
    common_object = None if data["common_object"] is None else _name(data["common_object"], "common_object")
    objects = data["objects"]
    if not isinstance(objects, list) or len(objects) != k:
        raise ValueError(f"objects must be a list of {k} entries")
    objects = [None if o is None else _name(o, f"objects[{i}]") for i, o in enumerate(objects)]
    if not isinstance(data["common_parts"], list):
        raise ValueError("common_parts must be a list")
    common = [_name(p, f"common_parts[{i}]") for i, p in enumerate(data["common_parts"])]
    unique = data["unique_parts"]
    if not isinstance(unique, list) or len(unique) != k or not all(isinstance(u, list) for u in unique):
        raise ValueError(f"unique_parts must be a list of {k} lists")
    unique = [[_name(p, f"unique_parts[{i}][{j}]") for j, p in enumerate(u)] for i, u in enumerate(unique)]
    dedupe = lambda names: list(dict.fromkeys(names))  # noqa: E731
    return Structure(common_object, objects, dedupe(common), [dedupe(u) for u in unique])


class Structurer(Protocol):
    def structure(self, question: str, description: str, k: int, task: str) -> Structure: ...


class ChatStructurer:
    def __init__(self, client: ChatClient, retries: int = 2):
        self.client, self.retries = client, retries

    def structure(self, question: str, description: str, k: int, task: str) -> Structure:
        messages = [{"role": "user", "content": STRUCTURE_PROMPT.format(k=k, question=question,
                                                                       description=description)}]
        problem = ""
        for _ in range(self.retries + 1):
            answer = self.client.complete(messages, json_mode=True)
            try:
                return parse_structure(answer, k)
            except ValueError as error:
                problem = str(error)
                messages = messages + [{"role": "assistant", "content": answer},
                                       {"role": "user", "content": f"That is not valid: {problem}. Reply with the "
                                                                   f"corrected JSON object only."}]
        raise StructureError(f"structurer answer still malformed after {self.retries + 1} tries: {problem}")


# ------------------------------------------------------------------ stage 3: segmenter and the cascade


class Segmenter(Protocol):
    def segment(self, image, name: str): ...


class Cascade:
    def __init__(self, describer: Describer, structurer: Structurer, segmenter: Segmenter):
        self.describer, self.structurer, self.segmenter = describer, structurer, segmenter

    def _masks(self, images, name: str, indices) -> dict:
        return {i: self.segmenter.segment(images[i], name) for i in indices}

    def predict(self, row: dict, images: Sequence) -> dict:
        k = len(images)
        description = self.describer.describe(images, row["question"])
        found = self.structurer.structure(row["question"], description, k, row["task"])
        if row["task"] == "common_object":
            groups = [Group(found.common_object, self._masks(images, found.common_object, range(k)))] \
                if found.common_object else []
            return compose(row["sample_id"], row["task"], groups)
        objects = [Group(name, self._masks(images, name, [i])) for i, name in enumerate(found.objects) if name]
        if row["task"] == "common_parts":
            parts = [Group(name, self._masks(images, name, range(k))) for name in found.common_parts]
        else:
            parts = [Group(name, self._masks(images, name, [i]))
                     for i, names in enumerate(found.unique_parts) for name in names]
        return compose(row["sample_id"], row["task"], objects, parts)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--describer-url", required=True, metavar="URL",
                        help="OpenAI-compatible base URL of the multi-image describer (e.g. a SparklesChat server)")
    parser.add_argument("--describer-model", default="sparkleschat")
    parser.add_argument("--structurer-url", default="https://api.openai.com/v1", metavar="URL")
    parser.add_argument("--structurer-model", default="gpt-4o")
    parser.add_argument("--describer-key-env", metavar="VAR",
                        help="environment variable holding the describer endpoint's API key (default: none, no "
                             "Authorization header is sent to the describer)")
    parser.add_argument("--structurer-key-env", default="OPENAI_API_KEY", metavar="VAR",
                        help="environment variable holding the structurer endpoint's API key (default "
                             "OPENAI_API_KEY); it is sent to --structurer-url only")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per chat request (default 120)")
    parser.add_argument("--retries", type=int, default=2,
                        help="retries per request on timeouts, dropped connections, 429 and 5xx")
    parser.add_argument("--structure-retries", type=int, default=2, help="re-asks on malformed structurer JSON")
    parser.add_argument("--max-consecutive-failures", type=positive_int, default=5, metavar="N",
                        help="stop the run after N samples in a row whose chat endpoint could not be reached or "
                             "kept failing (default 5)")
    parser.add_argument("--max-failed-share", type=fraction, default=0.1, metavar="F",
                        help="exit with an error when more than this share of samples got an empty prediction "
                             "(default 0.1; the predictions are still written)")
    parser.add_argument("--segmenter", required=True, metavar="NAME|MODULE:FACTORY",
                        help="single-image referring segmenter: 'lisa' (the paper's; with --segmenter-model or "
                             "--segmenter-checkpoint), or MODULE:FACTORY where FACTORY(args) returns an object "
                             "with segment(image, name) -> HxW bool mask")
    parser.add_argument("--segmenter-model", metavar="DIR",
                        help="lisa: a saved (e.g. fine-tuned) LISA/GLaMM model folder")
    parser.add_argument("--segmenter-checkpoint", metavar="PATH", help="lisa: the official LISA-7B-v1 checkpoint")
    parser.add_argument("--segmenter-clip", metavar="PATH", help="lisa: a CLIP checkpoint when the official one "
                                                                  "lacks the vision tower")
    parser.add_argument("--segmenter-tokenizer", metavar="DIR", help="lisa: tokenizer folder (default: checkpoint)")
    parser.add_argument("--segmenter-max-new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="lisa: torch device (default cpu)")


SEGMENTERS = {"lisa": "baselines.multi_image_llava:lisa_segmenter"}


def load_segmenter(spec: str, args: argparse.Namespace) -> Segmenter:
    spec = SEGMENTERS.get(spec, spec)
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute or "segmenter")
    except (ImportError, AttributeError) as error:
        raise BaselineError(f"--segmenter {spec!r}: {error}") from None
    return factory(args)


class TooManyFailures(BaselineError):
    """The run failed as a whole; ``predictions`` (empty for the failed samples) are kept for inspection."""

    def __init__(self, message: str, predictions: list[dict]):
        super().__init__(message)
        self.predictions = predictions


def _key(variable: str | None, what: str) -> str | None:
    if not variable:
        return None
    key = os.environ.get(variable)
    if not key:
        raise BaselineError(f"{what}: the environment variable {variable} is not set (or empty)")
    return key


def run(args: argparse.Namespace, rows: list[dict], images) -> list[dict]:
    describer_key = _key(args.describer_key_env, "--describer-key-env")
    structurer_key = _key(args.structurer_key_env, "--structurer-key-env")
    describer = ChatDescriber(ChatClient(args.describer_url, args.describer_model, describer_key, args.timeout,
                                         args.retries))
    structurer = ChatStructurer(ChatClient(args.structurer_url, args.structurer_model, structurer_key,
                                           args.timeout, args.retries), args.structure_retries)
    cascade = Cascade(describer, structurer, load_segmenter(args.segmenter, args))
    return run_cascade(cascade, rows, images, args.max_consecutive_failures, args.max_failed_share)


def run_cascade(cascade: Cascade, rows: list[dict], images, max_consecutive_failures: int = 5,
                max_failed_share: float = 0.1) -> list[dict]:
    predictions, failed = [], []
    endpoint_failures_in_a_row = 0
    for n, row in enumerate(rows, 1):
        try:
            predictions.append(cascade.predict(row, images.open_all(row)))
            endpoint_failures_in_a_row = 0
        except (StructureError, ChatError) as error:
            failed.append(f"{row['sample_id']}: {error}")
            predictions.append(compose(row["sample_id"], row["task"], [], []))
            # A malformed structure is the model's answer; only an endpoint that cannot be used counts here.
            endpoint_failures_in_a_row = endpoint_failures_in_a_row + 1 if isinstance(error, ChatError) else 0
            if endpoint_failures_in_a_row >= max_consecutive_failures:
                raise TooManyFailures(f"cascade: stopped after {endpoint_failures_in_a_row} samples in a row whose "
                                      f"chat endpoint failed ({n} of {len(rows)} samples done); last: {failed[-1]}",
                                      predictions) from None
    if failed:
        print(f"cascade: {len(failed)} of {len(rows)} samples got an empty prediction; first: {failed[0]}",
              file=sys.stderr)
    if rows and len(failed) / len(rows) > max_failed_share:
        raise TooManyFailures(f"cascade: {len(failed)} of {len(rows)} samples ({100 * len(failed) / len(rows):.0f}%) "
                              f"got an empty prediction, more than --max-failed-share {max_failed_share:g}; first: "
                              f"{failed[0]}", predictions)
    return predictions
