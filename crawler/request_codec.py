"""Requests as JSON in the shared Redis frontier (`--backend redis`): the queue's members are data, never code.

scrapy-redis pickles its queue members by default, so anyone able to write to the Redis could run code on every
worker. Here a member is UTF-8 JSON of Scrapy's request dict (`Request.to_dict`) made JSON-safe with a few tags:

| tag (`{"$t": ..., "v": ...}`) | what |
|---|---|
| `bytes` | base64 of bytes (a body, header names and values) |
| `tuple`, `set` | their items, as a list |
| `date`, `datetime` | ISO text |
| `dict` | a dict whose keys are not all text (or that holds the key `$t`), as [key, value] pairs |
| `dc` | one of the crawler's own dataclasses (`"c": "crawler.<module>.<Class>"`) with its fields: rebuilt only when the
  class is a dataclass of an already imported `crawler.` module, so a member can name no other code |

Decoding rebuilds a plain `scrapy.Request` (no request class is ever loaded by name) for an http(s) URL, whose
callback and errback must be the spider's own `parse*` methods or its errback `page_failed`, and whose meta sets no
key that changes how it is fetched (`proxy`, `dont_obey_robotstxt`, `allow_offsite`, ...: UNSAFE_META). A member
that fails any of this is poison (`PoisonMember` with a short reason): the scheduler moves it to `<key>:poison`
and counts it (crawler.redis_backend).
"""

from __future__ import annotations

import base64
import dataclasses
import inspect
import json
import sys
from datetime import date, datetime
from typing import Any

from scrapy import Request

MAX_MEMBER_BYTES = 8 * 1024 * 1024
CALLBACK_PREFIX = "parse"
ERRBACKS = ("page_failed",)
_TAG = "$t"
REQUEST_KEYS = frozenset(
    {
        "url",
        "callback",
        "errback",
        "headers",
        "method",
        "body",
        "cookies",
        "meta",
        "encoding",
        "priority",
        "dont_filter",
        "flags",
        "cb_kwargs",
    }
)
_FIELDS = {"url": str, "method": str, "priority": int, "dont_filter": bool, "encoding": str}
# request.meta keys that would change where or how a worker fetches (a proxy, robots.txt, offsite, limits): a
# request of this crawl never carries them, so a member that does is poison
UNSAFE_META = frozenset(
    {
        "proxy",
        "_auth_proxy",
        "bindaddress",
        "dont_obey_robotstxt",
        "allow_offsite",
        "download_maxsize",
        "download_warnsize",
        "handle_httpstatus_all",
        "handle_httpstatus_list",
        "dont_merge_cookies",
        "cookiejar",
        "ftp_user",
        "ftp_password",
        "dont_proxy",
    }
)


class PoisonMember(ValueError):
    """A queue member that is not a request this crawl made; `reason` is the short key it is counted under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# ---- encoding -------------------------------------------------------------------------------------------------
def _tagged(tag: str, value: Any, **extra: Any) -> dict:
    return {_TAG: tag, "v": value, **extra}


def to_json_safe(value: Any) -> Any:
    """`value` with bytes, tuples, sets, dates, odd dicts and the crawler's dataclasses tagged (module doc)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return _tagged("bytes", base64.b64encode(bytes(value)).decode("ascii"))
    if isinstance(value, list):
        return [to_json_safe(v) for v in value]
    if isinstance(value, tuple):
        return _tagged("tuple", [to_json_safe(v) for v in value])
    if isinstance(value, (set, frozenset)):
        return _tagged("set", [to_json_safe(v) for v in sorted(value, key=repr)])
    if isinstance(value, datetime):
        return _tagged("datetime", value.isoformat())
    if isinstance(value, date):
        return _tagged("date", value.isoformat())
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and _TAG not in value:
            return {k: to_json_safe(v) for k, v in value.items()}
        return _tagged("dict", [[to_json_safe(k), to_json_safe(v)] for k, v in value.items()])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        fields = {f.name: to_json_safe(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return _tagged("dc", fields, c=f"{cls.__module__}.{cls.__qualname__}")
    raise TypeError(f"cannot put a {type(value).__name__} into a Redis queue member (JSON): {value!r:.80}")


def encode_request(request: Request, spider) -> bytes:
    """The queue member of `request`: compact UTF-8 JSON."""
    data = request.to_dict(spider=spider)
    if data.pop("_class", None):  # a Request subclass (FormRequest, ...): sent as the plain Request it is
        pass
    return json.dumps(to_json_safe(data), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---- decoding -------------------------------------------------------------------------------------------------
def _dataclass_type(name: Any) -> type:
    if not isinstance(name, str) or "." not in name:
        raise PoisonMember("bad_type", repr(name)[:80])
    module_name, _, class_name = name.rpartition(".")
    module = sys.modules.get(module_name) if module_name.startswith("crawler.") else None
    cls = module.__dict__.get(class_name) if module is not None else None  # no import, no attribute lookup hooks
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise PoisonMember("bad_type", name[:80])
    return cls


def from_json_safe(value: Any) -> Any:
    """The inverse of to_json_safe; PoisonMember for anything it would not have written."""
    if isinstance(value, list):
        return [from_json_safe(v) for v in value]
    if not isinstance(value, dict):
        return value
    if _TAG not in value:
        return {k: from_json_safe(v) for k, v in value.items()}
    tag, inner = value[_TAG], value.get("v")
    if tag == "bytes" and isinstance(inner, str):
        return base64.b64decode(inner.encode("ascii"), validate=True)
    if tag in ("tuple", "set", "dict") and isinstance(inner, list):
        items = [from_json_safe(v) for v in inner]
        if tag == "tuple":
            return tuple(items)
        if tag == "set":
            return set(items)
        if all(isinstance(pair, list) and len(pair) == 2 for pair in items):
            return {k: v for k, v in items}
    if tag in ("date", "datetime") and isinstance(inner, str):
        return (datetime if tag == "datetime" else date).fromisoformat(inner)
    if tag == "dc" and isinstance(inner, dict):
        cls = _dataclass_type(value.get("c"))
        return cls(**{k: from_json_safe(v) for k, v in inner.items()})
    raise PoisonMember("bad_tag", repr(tag)[:40])


def _own_function(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        found = klass.__dict__.get(name)
        if found is not None:
            module = getattr(found, "__module__", None) or ""
            return found if inspect.isfunction(found) and module.startswith("crawler.") else None
    return None


def _method(spider, name: Any, errback: bool) -> Any:
    if name is None:
        return None
    allowed = name in ERRBACKS if errback else (isinstance(name, str) and name.startswith(CALLBACK_PREFIX))
    # looked up statically along the spider's own classes (its mixins included: parse_ajax lives in one), and only
    # a plain function of a crawler module counts: no descriptor or __getattr__ hook runs for a hostile name
    method = _own_function(type(spider), name) if allowed else None
    if method is None:
        raise PoisonMember("bad_callback", repr(name)[:80])
    return getattr(spider, name)


def _check_shape(data: Any) -> dict:
    if not isinstance(data, dict):
        raise PoisonMember("not_a_request", type(data).__name__)
    if set(data) - REQUEST_KEYS:  # `_class` above all: a request class is never loaded by name
        raise PoisonMember("not_a_request", "unknown key(s) " + ", ".join(sorted(set(data) - REQUEST_KEYS))[:80])
    for key, kind in _FIELDS.items():
        if key in data and not (isinstance(data[key], kind) and not (kind is int and isinstance(data[key], bool))):
            raise PoisonMember("not_a_request", f"{key} is {type(data[key]).__name__}")
    if "url" not in data:
        raise PoisonMember("not_a_request", "no url")
    if not data["url"].startswith(("http://", "https://")):
        raise PoisonMember("bad_request", f"not an http(s) URL: {data['url'][:80]!r}")
    for key, kind in (("meta", dict), ("cb_kwargs", dict), ("headers", dict), ("flags", list)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise PoisonMember("not_a_request", f"{key} is {type(data[key]).__name__}")
    unsafe = sorted(UNSAFE_META & set(data.get("meta") or {}))
    if unsafe:
        raise PoisonMember("unsafe_meta", ", ".join(unsafe))
    if data.get("body") is not None and not isinstance(data["body"], (bytes, str)):
        raise PoisonMember("not_a_request", "body")
    if data.get("cookies") is not None and not isinstance(data["cookies"], (dict, list)):
        raise PoisonMember("not_a_request", "cookies")
    return data


def decode_request(member: Any, spider) -> Request:
    """The request a queue member holds; PoisonMember (never another exception) for anything else."""
    try:
        if not isinstance(member, (bytes, bytearray)) or len(member) > MAX_MEMBER_BYTES:
            raise PoisonMember("not_json", "empty, huge or not bytes")
        try:
            raw = json.loads(bytes(member).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise PoisonMember("not_json") from None
        data = _check_shape(from_json_safe(raw))
        return Request(
            url=data["url"],
            callback=_method(spider, data.get("callback"), False),
            errback=_method(spider, data.get("errback"), True),
            method=data.get("method", "GET"),
            headers=data.get("headers"),
            body=data.get("body"),
            cookies=data.get("cookies"),
            meta=data.get("meta"),
            encoding=data.get("encoding", "utf-8"),
            priority=data.get("priority", 0),
            dont_filter=data.get("dont_filter", False),
            flags=data.get("flags"),
            cb_kwargs=data.get("cb_kwargs"),
        )
    except PoisonMember:
        raise
    except RecursionError:
        raise PoisonMember("too_deep") from None
    except Exception as exc:  # a hostile member may trip any check of Request(); it is poison, not a crash
        raise PoisonMember("bad_request", f"{type(exc).__name__}: {exc}"[:120]) from None
