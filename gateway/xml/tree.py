"""Hardened XML parsing of request bodies into a small element tree.

Owns: ``parse_document`` and ``Node``. The stdlib expat parser runs directly with: no DTD
at all (any DOCTYPE or ENTITY declaration is rejected, so no entity expansion or external
fetches), parameter-entity parsing off, a byte cap per document (``MAX_XML_BYTES``, or
``MAX_LIST_XML_BYTES`` for the long list bodies), a depth cap and an element-count cap.
Namespaces are tolerated: elements match on their local name, with or without the S3
namespace.

Invariant: anything malformed (or over a cap, or with the wrong root) raises
``S3Error`` MalformedXML; nothing else escapes.

Pure: imports only the stdlib and ``gateway.errors``. Must not import starlette or
anything doing I/O.
"""

from __future__ import annotations

from xml.parsers import expat

from gateway.errors import S3Error

__all__ = ["MAX_LIST_XML_BYTES", "MAX_XML_BYTES", "Node", "parse_document"]

MAX_XML_BYTES = 1024 * 1024
MAX_LIST_XML_BYTES = 8 * 1024 * 1024  # CompleteMultipartUpload (10,000 parts), Delete (1,000)
_MAX_DEPTH = 16
_MAX_ELEMENTS = 200_000


class _Rejected(Exception):
    pass


class Node:
    __slots__ = ("attrs", "children", "name", "text")

    def __init__(self, name: str, attrs: dict[str, str]) -> None:
        self.name = name
        self.attrs = attrs
        self.children: list[Node] = []
        self.text: list[str] = []

    def all(self, name: str) -> list[Node]:
        return [c for c in self.children if c.name == name]

    def first(self, name: str) -> Node | None:
        for c in self.children:
            if c.name == name:
                return c
        return None

    def value(self) -> str:
        return "".join(self.text)

    def text_of(self, name: str, *, strip: bool = True) -> str | None:
        node = self.first(name)
        if node is None:
            return None
        text = node.value()
        return text.strip() if strip else text


def _local(name: str) -> str:
    return name.rpartition(" ")[2]


def _reject(*_args: object) -> None:
    raise _Rejected("DTDs and entity declarations are not allowed")


def parse_document(body: bytes, root: str, max_bytes: int = MAX_XML_BYTES) -> Node:
    if len(body) > max_bytes:
        raise S3Error.malformed_xml(f"document larger than {max_bytes} bytes")
    if not body.strip():
        raise S3Error.malformed_xml("empty document")
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _reject
    parser.EntityDeclHandler = _reject
    parser.UnparsedEntityDeclHandler = _reject
    parser.ExternalEntityRefHandler = _reject  # type: ignore[assignment]
    stack: list[Node] = []
    result: list[Node] = []
    count = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal count
        count += 1
        if len(stack) >= _MAX_DEPTH or count > _MAX_ELEMENTS:
            raise _Rejected("document too deep or too large")
        node = Node(_local(name), {_local(k): v for k, v in attrs.items()} if attrs else {})
        if stack:
            stack[-1].children.append(node)
        else:
            result.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def data(text: str) -> None:
        if stack:
            stack[-1].text.append(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    try:
        parser.Parse(body, True)
    except (expat.ExpatError, _Rejected, ValueError, UnicodeError) as exc:
        raise S3Error.malformed_xml() from exc
    if not result or result[0].name != root:
        raise S3Error.malformed_xml(f"expected root element {root}")
    return result[0]
