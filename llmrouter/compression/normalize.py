"""Lossless-in-meaning clean-up: whitespace, pasted HTML, and (only if allowed) JSON.

Leading indentation is never touched (it is meaning in code, YAML and lists); code and
JSON blocks are left byte for byte unless ``preserve_code`` is off, in which case JSON is
minified (re-serialised compactly, same data).
"""

from __future__ import annotations

import html
import json
import re

from llmrouter.compression.text import split_blocks

__all__ = ["normalize_text", "strip_html"]

_INNER_SPACES = re.compile(r"(?<=\S)[ \t\u00a0]{2,}(?=\S)")
_ZERO_WIDTH_CHARS = "\u200b\u200c\u200d\ufeff"
_ZERO_WIDTH = re.compile(f"[{_ZERO_WIDTH_CHARS}]")
_HTML_TAG = re.compile(
    r"</?(?:html|head|body|div|p|span|table|tr|td|th|ul|ol|li|br|h[1-6]|a|b|i|em|strong|"
    r"section|article|header|footer|nav|tbody|thead|img|meta|link)\b[^>]*>",
    re.IGNORECASE,
)
_DROP_ELEMENTS = re.compile(r"<(script|style|head|noscript)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_BREAKING_TAG = re.compile(
    r"<(?:br|/p|/div|/li|/h[1-6]|/tr|/table|/section|/article)\b[^>]*>", re.I
)
_ANY_TAG = re.compile(r"</?[a-zA-Z][^<>]*>|<!--.*?-->|<!DOCTYPE[^>]*>", re.S)
_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
# Substrings without which normalisation has nothing to do (a plain `in` test per marker
# is far faster than any regex over a long prompt).
_WORK_MARKERS = (
    "  ",
    "\t",
    "\r",
    "\u00a0",
    " \n",
    "\n\n\n",
    "<",
    "```",
    "~~~",
    "\u200b",
    "\u200c",
    "\u200d",
    "\ufeff",
)
# Pasted HTML has many structural tags; a prompt that mentions a tag or two does not.
_MIN_HTML_TAGS = 5


def strip_html(text: str) -> str:
    """Text of an HTML document or fragment, with block elements as line breaks."""
    text = _DROP_ELEMENTS.sub("", text)
    text = _BREAKING_TAG.sub(lambda m: m.group(0) + "\n", text)
    text = _ANY_TAG.sub("", text)
    return html.unescape(text)


def _normalize_prose(text: str) -> str:
    if "<" in text and len(_HTML_TAG.findall(text)) >= _MIN_HTML_TAGS:
        text = strip_html(text)
    # each regex only where a plain substring test says it can match (much faster)
    if _has_space_run(text):
        text = _INNER_SPACES.sub(" ", text)
    if " \n" in text or "\t\n" in text or "\u00a0\n" in text or text.endswith((" ", "\t")):
        # trailing blanks, line by line: a regex (`[ \t]+$`) would try every space in the text
        text = "\n".join([line.rstrip(" \t\u00a0") for line in text.split("\n")])
    if "\n\n" in text or "\n " in text or "\n\t" in text:
        text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip("\n")


def _has_space_run(text: str) -> bool:
    """Whether two of space, tab and no-break space are adjacent (what _INNER_SPACES needs)."""
    if "  " in text:
        return True
    spaces = [" "] + [char for char in "\t\u00a0" if char in text]
    return len(spaces) > 1 and any(a + b in text for a in spaces for b in spaces)


def _needs_work(text: str, preserve_code: bool) -> bool:
    if not text or text[0].isspace() or text[-1].isspace():
        return bool(text)
    if not preserve_code and ("{" in text or "[" in text):
        return True
    return any(marker in text for marker in _WORK_MARKERS)


def normalize_text(text: str, *, preserve_code: bool = True) -> str:
    """Whitespace collapsed, HTML stripped and (if allowed) JSON minified, outside code."""
    if not _needs_work(text, preserve_code):
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii() and any(char in text for char in _ZERO_WIDTH_CHARS):
        text = _ZERO_WIDTH.sub("", text)
    out: list[str] = []
    cursor = 0
    for block in split_blocks(text):
        between = text[cursor : block.start]
        out.append("\n\n" if "\n" in between and out else ("" if not out else between))
        if block.kind == "prose":
            out.append(_normalize_prose(block.text))
        elif block.kind == "json" and not preserve_code:
            out.append(
                json.dumps(json.loads(block.text), ensure_ascii=False, separators=(",", ":"))
            )
        else:
            out.append(block.text)
        cursor = block.end
    return "".join(out)
