"""The XML API's pipeline: every request under ``/bigbluebutton`` takes this one path.

:class:`ApiPipeline` knows no call. Call families register their handlers with
:meth:`ApiPipeline.add_call` (see :mod:`~meetplatform.xmlapi.meeting_calls`,
:mod:`~meetplatform.xmlapi.hooks`, ...), and the pipeline does what every call shares:
bound the query and body, decode the parameters once, verify the checksum on the raw query
string (or, for a POST form with an empty query, on the form as bbb-web does), run the
handler, and render its node tree as XML, JSON or JSONP. Handlers raise
:class:`~meetplatform.xmlapi.errors.ApiError`.

One path: the pipeline is itself the leaf resource mounted at ``/bigbluebutton``, and routes
by looking at ``request.postpath`` (``/api`` is the index, ``/api/<call>`` a call, anything
else a 404 in the API's format). An earlier version sent the registered calls here and the
rest through a Klein app; Werkzeug's routing cost about as much CPU as a whole signed call
and gave nothing a dictionary lookup does not, so the second path is gone.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Union
from urllib.parse import quote, unquote_to_bytes

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

import meetplatform
from meetplatform import checksum as bbb_checksum
from meetplatform.config import Settings
from meetplatform.xmlapi import errors
from meetplatform.xmlapi import params as P
from meetplatform.xmlapi.errors import ApiError
from meetplatform.xmlapi.negotiation import answer_format
from meetplatform.xmlapi.render import (
    JSON_CONTENT_TYPE,
    JSONP_CONTENT_TYPE,
    XML_CONTENT_TYPE,
    Items,
    Node,
    json_body,
    valid_callback,
    xml_body,
)

_log = Logger()

API_VERSION = "2.0"
_FORM = b"application/x-www-form-urlencoded"
_MULTIPART = b"multipart/form-data"
_XML_TYPES = (b"application/xml", b"text/xml")
#: Parameters one form body may carry (Tomcat's ``maxParameterCount``, which bbb-web runs
#: behind, is 10,000 too): counted before decoding, so a body of ``&`` is refused in a
#: millisecond instead of being decoded item by item on the reactor.
MAX_FORM_FIELDS = 10_000

Nodes = list[Node]
Answer = Union[Nodes, "Redirect", "RawXml", "Prerendered"]
Handler = Callable[["CallContext"], Answer | Awaitable[Answer]]
#: What a request's checksum covers: the split raw query (``(checksum, rest)``, or ``None``
#: when the query has no single checksum) and, for a form-signed POST, the form's pairs.
_Signature = tuple[tuple[bytes, bytes] | None, list[tuple[str, str]] | None]


@dataclass
class Redirect:
    """Answer with a 302 to ``url``."""

    url: str


@dataclass
class RawXml:
    """Answer with a whole XML document that is not a ``<response>`` (``config.xml``)."""

    xml: str
    #: The name of the document in a JSON answer.
    json_name: str


@dataclass(slots=True)
class CallContext:
    """What a call handler gets: the request, its decoded parameters and its XML body."""

    request: Request
    call: str
    params: P.Params
    #: The body of a POST sent as ``application/xml`` or ``text/xml``, else ``None``.
    xml_body: bytes | None
    #: ``"xml"``, ``"json"`` or ``"jsonp"``.
    fmt: str
    callback: str | None
    #: The checksum algorithm the call was signed with (``"sha1"``...), set once the
    #: checksum verified; ``None`` before (and for the unsigned API root).
    algorithm: str | None = None


@dataclass(slots=True)
class Prerendered:
    """A whole SUCCESS answer the handler already has as bytes, in the request's format.

    For hot paths that keep their answers rendered (getMeetings, getMeetingInfo): ``body``
    is the complete ``<response>`` document for ``fmt == "xml"``, else the JSON text
    ``{"response":{...}}`` (the pipeline wraps it for JSONP). It must be byte for byte what
    the same nodes would render to; the pipeline writes it as it is.
    """

    body: bytes


@dataclass(frozen=True)
class _Call:
    name: bytes
    handler: Handler
    checksum_error: Callable[[], ApiError]
    #: A redirecting ``join``: errors become redirects carrying ``errors=[...]``.
    redirects_errors: bool = False


def detect_revision() -> str:
    """The git commit this code was built from, read from ``.git`` files (no subprocess)."""
    here = Path(meetplatform.__file__).resolve().parent
    for base in (here.parent, here.parent.parent):
        git = base / ".git"
        try:
            head = (git / "HEAD").read_text().strip()
            if not head.startswith("ref:"):
                return head
            ref = head[4:].strip()
            ref_file = git / ref
            if ref_file.exists():
                return ref_file.read_text().strip()
            packed = git / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
        except OSError:
            continue
    return "unknown"


def _answer_format(request: Request) -> str:
    """``"xml"`` or ``"json"`` by the rule of :mod:`~meetplatform.xmlapi.negotiation`."""
    return answer_format(request.getHeader(b"accept"))


def _multipart_fields(content_type: bytes, body: bytes) -> dict[bytes, list[bytes]]:
    """The named fields of a ``multipart/form-data`` body, split here and only here.

    The site does not let Twisted parse bodies into ``request.args`` (it did so for any
    path before a resource was chosen); the body is already within the API's limit. The
    fields stay bytes: :func:`~meetplatform.xmlapi.params.decode_form_pairs` decodes them
    under the service's one text rule.
    """
    if body.count(b"\r\n--") >= MAX_FORM_FIELDS:
        raise errors.validation(f"A form may carry at most {MAX_FORM_FIELDS} parameters.")
    message = BytesParser().parsebytes(
        b"MIME-Version: 1.0\r\nContent-Type: " + content_type + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise errors.validation("The multipart form could not be read.")
    fields: dict[bytes, list[bytes]] = {}
    for part in message.get_payload():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        payload = part.get_payload(decode=True)
        value = payload if isinstance(payload, bytes) else b""
        fields.setdefault(name.encode("utf-8", "surrogateescape"), []).append(value)
    return fields


class ApiPipeline(Resource):
    """The leaf at ``/bigbluebutton``: routes, verifies and renders; the calls are added."""

    isLeaf = True

    def __init__(self, settings: Settings, *, revision: str | None = None) -> None:
        super().__init__()
        self._settings = settings
        self._revision = revision if revision is not None else detect_revision()
        self._public_url = settings.public_url.rstrip("/")
        self._secret = settings.secret
        self._secret_bytes = settings.secret.encode("utf-8")
        self._algorithms = frozenset(settings.checksum_algorithms)
        self._calls: dict[str, _Call] = {}

    def resource(self) -> Resource:
        """The resource to mount as the ``bigbluebutton`` child of the site's root."""
        return self

    def call_names(self) -> frozenset[str]:
        """The names served under ``/api/`` (request metrics label only these)."""
        return frozenset(self._calls)

    def add_call(self, name: str, handler: Handler, *,
                 checksum_error: Callable[[], ApiError] | None = None,
                 redirects_errors: bool = False) -> None:
        """Serve ``/api/<name>`` (e.g. ``hooks/create``) with a checksum-verified handler.

        The handler receives a :class:`CallContext` and returns a list of ``(element,
        value)`` pairs to follow ``<returncode>SUCCESS</returncode>`` (or an awaitable of
        one), or raises :class:`~meetplatform.xmlapi.errors.ApiError`. With
        ``redirects_errors`` (a redirecting ``join``), errors answer with a redirect, as
        bbb-web does. A later registration of the same name replaces the earlier one.
        """
        self._calls[name] = _Call(name.encode("utf-8"), handler,
                                  checksum_error or errors.checksum_error, redirects_errors)

    # --- routing ------------------------------------------------------------------------

    def render(self, request: Request) -> Any:  # type: ignore[override]
        """``/api`` and ``/api/``: the index; ``/api/<call>[/]``: a call; else a 404."""
        path = request.postpath or []
        if not path or path[0] != b"api":
            return self._elsewhere(request)
        if len(path) == 1 or (len(path) == 2 and not path[1]):
            return self._dispatch(request, None)
        if not path[1]:
            return self._elsewhere(request)  # ``/api//x``: no call name starts with a slash
        try:
            name = b"/".join(path[1:]).decode("utf-8").rstrip("/")
        except UnicodeDecodeError:
            name = "\ufffd"  # no call has this name: unsupportedRequest
        return self._write_later(request, self._dispatch(request, name))

    def _elsewhere(self, request: Request) -> bytes:
        """Anything under ``/bigbluebutton`` that is not the API: a 404 in the API's format."""
        error = ApiError("notFound", "There is nothing at this address; the API is at "
                                     f"{self._settings.api_url}", status=404)
        return self._fail(request, None, None, error, _answer_format(request))

    @staticmethod
    def _write_later(request: Request, result: Any) -> Any:
        """Write an asynchronous answer when it comes, unless the client has gone."""
        if not isinstance(result, Deferred):
            return result
        gone: list[object] = []
        request.notifyFinish().addBoth(gone.append)

        def write(body: bytes) -> None:
            if not gone:
                request.write(body)
                request.finish()

        result.addCallback(write)
        result.addErrback(lambda failure: _log.failure(
            "writing an XML API answer failed", failure))
        return NOT_DONE_YET

    # --- the pipeline -------------------------------------------------------------------

    def _dispatch(self, request: Request, name: str | None) -> Any:
        ctx: CallContext | None = None
        spec: _Call | None = None
        fmt = _answer_format(request)
        try:
            method = request.method
            if method not in (b"GET", b"POST", b"HEAD"):
                raise errors.method_not_allowed(method.decode("ascii", "replace"))
            uri = request.uri
            mark = uri.find(b"?")
            raw_query = b"" if mark < 0 else uri[mark + 1:]
            if len(raw_query) > self._settings.max_query_bytes:
                raise errors.query_too_large(self._settings.max_query_bytes)
            body, content_type = self._body(request)
            if name is not None:
                spec = self._calls.get(name)
                if spec is None:
                    raise errors.unsupported_request()
            ctx, signature = self._context(request, name or "", raw_query, body,
                                           content_type, fmt)
            fmt = ctx.fmt
            if spec is None:
                return self._finish(request, ctx, self._index())
            self._verify(spec, body, signature, ctx)
            answer = spec.handler(ctx)
        except ApiError as error:
            return self._fail(request, ctx, spec, error, fmt)
        except Exception:  # noqa: BLE001 - a bug must still answer BBB XML (and be logged)
            _log.failure("XML API call {call} failed", call=name)
            return self._fail(request, ctx, spec, ApiError(
                "internalError", "An internal error occurred; it has been logged."), fmt)
        if isinstance(answer, (list, Redirect, RawXml, Prerendered)):
            return self._finish(request, ctx, answer)
        deferred: Deferred[Answer] = Deferred.fromCoroutine(answer)  # type: ignore[arg-type]
        deferred.addCallbacks(
            lambda result: self._finish(request, ctx, result),  # type: ignore[arg-type]
            lambda failure: self._async_failure(request, ctx, spec, failure, fmt))
        return deferred

    def _index(self) -> Nodes:
        """The API root: unsigned, names the service (as bbb-web's does)."""
        return [
            ("version", API_VERSION),
            ("apiVersion", API_VERSION),
            ("custom", [
                ("name", self._settings.server_name),
                ("version", meetplatform.__version__),
                ("revision", self._revision),
            ]),
        ]

    def _body(self, request: Request) -> tuple[bytes, bytes]:
        """The request body (``b""`` for GET and HEAD, whose bodies are read and ignored)."""
        if request.method != b"POST":
            return b"", b""
        content = request.content
        if content is None:
            return b"", b""
        limit = self._settings.max_body_bytes
        content.seek(0)
        body = content.read(limit + 1)
        if len(body) > limit:
            raise errors.body_too_large(limit)
        if not body:
            return b"", b""
        header = request.getHeader(b"content-type") or b""
        content_type = header.split(b";", 1)[0].strip().lower()
        if content_type not in (_FORM, _MULTIPART) and content_type not in _XML_TYPES:
            raise errors.unsupported_content_type()
        return body, content_type

    def _context(self, request: Request, name: str, raw_query: bytes, body: bytes,
                 content_type: bytes, fmt: str) -> tuple[CallContext, _Signature]:
        """Decode the parameters once; returns the context and what its checksum covers."""
        signed_form: list[tuple[str, str]] | None = None
        split: tuple[bytes, bytes] | None = None
        if raw_query:
            # The query is what the checksum covers; a form body alongside it is not signed,
            # so its parameters are ignored rather than trusted.
            try:
                split = bbb_checksum.split_checksum(raw_query)
            except bbb_checksum.ChecksumRefused:
                pairs = P.parse_pairs(raw_query)
            else:
                pairs = P.parse_pairs(split[1])
        elif content_type == _FORM:
            if body.count(b"&") >= MAX_FORM_FIELDS:
                raise errors.validation(f"A form may carry at most {MAX_FORM_FIELDS} parameters.")
            pairs = signed_form = P.parse_pairs(body)
        elif content_type == _MULTIPART:
            pairs = signed_form = P.decode_form_pairs(
                _multipart_fields(request.getHeader(b"content-type") or b"", body))
        else:
            pairs = []
        params = P.Params(pairs)
        callback = params.raw("callback")
        if callback is not None:
            if not valid_callback(callback):
                error = errors.validation(
                    "Param 'callback' must be a JavaScript function name for JSONP.")
                error.fmt = "json"
                raise error
            fmt = "jsonp"
        xml = body if content_type in _XML_TYPES else None
        return CallContext(request, name, params, xml, fmt, callback), (split, signed_form)

    def _verify(self, spec: _Call, body: bytes, signature: _Signature,
                ctx: CallContext) -> None:
        """Check the checksum; on success, record its algorithm in ``ctx.algorithm``."""
        split, signed_form = signature
        try:
            if signed_form is not None:
                raw_body = body if ctx.xml_body is None else b""
                bbb_checksum.verify_form(ctx.call, raw_body, signed_form, self._secret,
                                         self._algorithms)
                given = ctx.params.raw("checksum") or ""
            elif split is None:
                raise bbb_checksum.ChecksumRefused("no single checksum parameter")
            elif not bbb_checksum.matches(spec.name, split[1], split[0], self._secret_bytes,
                                          self._algorithms):
                raise bbb_checksum.ChecksumRefused("checksum does not match")
            else:
                given = split[0].decode("ascii", "replace")
        except bbb_checksum.ChecksumRefused as refused:
            _log.info("checksum refused on {call}: {reason}", call=ctx.call, reason=str(refused))
            error = spec.checksum_error()
            # The request's own parameters are not trusted: a redirecting join goes to the
            # default address, never to a URL named by an unsigned parameter.
            error.trusted = False
            raise error from None
        ctx.algorithm = bbb_checksum.ALGORITHM_BY_LENGTH.get(len(given))

    def _finish(self, request: Request, ctx: CallContext, answer: Answer) -> bytes:
        request.setHeader(b"cache-control", b"no-cache")
        if isinstance(answer, Redirect):
            request.setResponseCode(302)
            request.setHeader(b"location", answer.url.encode("utf-8"))
            request.setHeader(b"content-type", b"text/plain;charset=utf-8")
            return b""
        if isinstance(answer, Prerendered):
            return self._write_rendered(request, ctx.fmt, ctx.callback, answer.body)
        if isinstance(answer, RawXml):
            if ctx.fmt == "xml":
                request.setHeader(b"content-type", XML_CONTENT_TYPE)
                return answer.xml.encode("utf-8")
            nodes: Nodes = [("returncode", "SUCCESS"), (answer.json_name, answer.xml)]
        else:
            nodes = [("returncode", "SUCCESS"), *answer]
        return self._write(request, ctx.fmt, ctx.callback, nodes)

    @staticmethod
    def _write(request: Request, fmt: str, callback: str | None, nodes: Nodes) -> bytes:
        if fmt == "xml":
            request.setHeader(b"content-type", XML_CONTENT_TYPE)
            return xml_body(nodes)
        if fmt == "jsonp":
            request.setHeader(b"content-type", JSONP_CONTENT_TYPE)
            request.setHeader(b"x-content-type-options", b"nosniff")
            return json_body(nodes, callback)
        request.setHeader(b"content-type", JSON_CONTENT_TYPE)
        return json_body(nodes)

    @staticmethod
    def _write_rendered(request: Request, fmt: str, callback: str | None,
                        body: bytes) -> bytes:
        """:meth:`_write` for a :class:`Prerendered` body (same headers, same bytes)."""
        if fmt == "xml":
            request.setHeader(b"content-type", XML_CONTENT_TYPE)
            return body
        if fmt == "jsonp":
            request.setHeader(b"content-type", JSONP_CONTENT_TYPE)
            request.setHeader(b"x-content-type-options", b"nosniff")
            return b"".join((b"/**/", (callback or "").encode("ascii"), b"(", body, b");"))
        request.setHeader(b"content-type", JSON_CONTENT_TYPE)
        return body

    def _fail(self, request: Request, ctx: CallContext | None, spec: _Call | None,
              error: ApiError, fmt: str) -> bytes:
        request.setHeader(b"cache-control", b"no-cache")
        if (spec is not None and spec.redirects_errors and error.redirectable
                and self._redirecting(request, ctx)):
            target = self._public_url + "/"
            if ctx is not None and error.trusted:
                target = P.join_error_target(ctx.params, target)
            request.setResponseCode(302)
            request.setHeader(b"location", self._with_errors(target, error).encode("utf-8"))
            request.setHeader(b"content-type", b"text/plain;charset=utf-8")
            return b""
        if error.status != 200:
            request.setResponseCode(error.status)
        callback = None
        if error.fmt is not None:
            fmt = error.fmt
        elif ctx is not None:
            fmt, callback = ctx.fmt, ctx.callback
        if error.as_list:
            nodes: Nodes = [("returncode", "FAILED"), ("errors", Items("error", [
                [("key", error.key), ("message", error.message)]]))]
        else:
            nodes = [("returncode", "FAILED"), ("messageKey", error.key),
                     ("message", error.message)]
        return self._write(request, fmt, callback, nodes)

    @staticmethod
    def _redirecting(request: Request, ctx: CallContext | None) -> bool:
        """A join redirects unless it said ``redirect=false`` (or anything but ``true``).

        Without a context (its parameters could not be decoded, e.g. a ``fullName`` that
        is not UTF-8) the ``redirect`` flag is read from the raw query: it is ASCII, and a
        client that asked for XML must get XML even when another parameter is broken.
        """
        if ctx is not None:
            value = ctx.params.raw("redirect")
            return not value or value.strip().lower() == "true"
        query = request.uri.partition(b"?")[2]
        for part in query.split(b"&"):
            name, _, raw = part.partition(b"=")
            if name == b"redirect":
                flag = unquote_to_bytes(raw.replace(b"+", b" ")).strip().lower()
                return not flag or flag == b"true"
        return True

    def _async_failure(self, request: Request, ctx: CallContext, spec: _Call | None,
                       failure: Failure, fmt: str) -> bytes:
        if failure.check(ApiError):
            return self._fail(request, ctx, spec, failure.value, fmt)  # type: ignore[arg-type]
        _log.failure("XML API call {call} failed", failure, call=ctx.call)
        return self._fail(request, ctx, spec, ApiError(
            "internalError", "An internal error occurred; it has been logged."), fmt)

    @staticmethod
    def _with_errors(target: str, error: ApiError) -> str:
        payload = json.dumps([{"key": error.key, "message": error.message}],
                             separators=(",", ":"))
        glue = "&" if "?" in target else "?"
        return f"{target}{glue}errors={quote(payload, safe=':,')}"
