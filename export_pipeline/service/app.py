"""The HTTP layer of the export service (FastAPI): routes, the body size limit, and
``ApiError`` as responses. Everything a call decides is in ``api.ExportService``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from export_pipeline.service.api import ApiError, ExportService
from export_pipeline.service.tenants import Caller

STATIC = Path(__file__).parent / "static"

# Every answer: no MIME sniffing, no referrer (a page's or a signed URL's query is nobody's
# business). API answers hold signed URLs and a tenant's records: no cache may keep them.
# The Reports page runs only its own files, may not be framed (a framed page can be clicked
# through by the page around it), and sends forms and fetches nowhere else.
_EVERY_ANSWER = {b"x-content-type-options": b"nosniff", b"referrer-policy": b"no-referrer"}
_API_ANSWER = {b"cache-control": b"no-store"}
_PAGE_ANSWER = {
    b"content-security-policy": (
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    b"x-frame-options": b"DENY",
}


def _answer_headers(path: str) -> dict[bytes, bytes]:
    if path.startswith("/v1/"):
        return {**_EVERY_ANSWER, **_API_ANSWER}
    if path == "/" or path.startswith("/static/"):
        return {**_EVERY_ANSWER, **_PAGE_ANSWER}
    return dict(_EVERY_ANSWER)  # /docs loads Swagger UI from its CDN: no page policy there


_INTERNAL_ERROR = json.dumps({
    "reason": "internal_error", "message": "the service failed to answer; its log has the error",
}).encode()


class SecurityHeaders:
    """Adds ``_answer_headers`` to every HTTP answer, errors included (a plain ASGI
    middleware: it wraps the answers of exception handlers too, and streams untouched).

    An unexpected error is answered here, as a 500 in this API's shape with the same headers:
    Starlette's own 500 comes from the outermost middleware, outside this one, as plain text
    without them. The error still goes on to be logged by the server."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _answer_headers(scope["path"])
        started = False

        async def send_with_headers(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                message = {**message, "headers": [
                    *message.get("headers", []),
                    *((name, value) for name, value in extra.items() if name not in present),
                ]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                await send_with_headers({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_INTERNAL_ERROR)).encode()),
                ]})
                await send({"type": "http.response.body", "body": _INTERNAL_ERROR})
            raise
_bearer = HTTPBearer(auto_error=False, description="an API key from `export-pipeline keys new`")


class Problem(BaseModel):
    path: str
    message: str


class ErrorBody(BaseModel):
    reason: str
    message: str | None = None
    errors: list[Problem] | None = None


class Progress(BaseModel):
    fetches_done: int
    fetches_total: int
    rows: int | None = None


class ExportResource(BaseModel):
    id: str
    created: str
    modified: str
    created_by: str
    name: str
    notes: str
    status: Literal["queued", "running", "complete", "failed"]
    errors: list[Problem] | None = None
    number_of_rows: int | None = None
    total_bytes: int | None = None
    tags: list[str]
    format: Literal["csv", "xlsx", "pdf"]
    url: str | None = None
    expires_at: str | None = None
    expired: bool | None = None
    progress: Progress | None = None


class ExportList(BaseModel):
    exports: list[ExportResource]
    next_cursor: str | None = None


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in (401, 403, 429, *statuses)}


REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object",
        "description": "An export request (csvFormat + metricRequests, or the envelope "
        "{action, data: {id, route, body}}) with optional format, destinations, notification, "
        "name, notes and tags; or {savedExport, start, end} with optional name, notes and tags.",
        "additionalProperties": True,
    }}},
}


def create_app(service: ExportService, max_body_bytes: int) -> FastAPI:
    app = FastAPI(
        title="export_pipeline export service",
        version="1",
        description="Exports as API resources: create one, poll it until complete, download "
        "it through a URL signed afresh at each view, delete it.",
    )
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body, status_code=error.status, headers=error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        """Starlette's own answers (no such route, method not allowed) in this API's shape;
        ``Allow`` lists every method of the path, not only the first route's."""
        headers = dict(error.headers or {})
        if error.status_code == 405:
            methods = {m for route in app.router.routes
                       if getattr(route, "methods", None) and route.path_regex.match(request.url.path)
                       for m in route.methods}
            headers["Allow"] = ", ".join(sorted(methods))
        reason = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "error")
        return JSONResponse({"reason": reason, "message": str(error.detail)},
                            status_code=error.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def request_error(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{"path": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
                  for e in error.errors()]
        return JSONResponse({"reason": "invalid_request", "errors": errors}, status_code=422)

    def caller(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
        header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
        return service.authenticate(header)

    if STATIC.is_dir():  # the Reports page's own files
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """For load balancers and Kubernetes probes: the process answers. No caller, no
        database: a replica is not restarted or taken out because PostgreSQL is slow."""
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        page = STATIC / "index.html"
        if page.is_file():
            return FileResponse(page)
        return HTMLResponse("<!doctype html><title>Exports</title><h1>Export service</h1>"
                            "<p>API: <a href='/docs'>/docs</a>, <a href='/openapi.json'>/openapi.json</a></p>")

    @app.post(
        "/v1/exports", status_code=202, response_model=ExportResource,
        responses={**_errors(413, 422, 503), 202: {"headers": {"Location": {
            "schema": {"type": "string"}, "description": "the new export's URL"}}}},
        openapi_extra={"requestBody": REQUEST_BODY},
        summary="Create an export",
        description=f"Bodies over {max_body_bytes} bytes are refused (413) before they are read "
        "further. 422 names every problem with its JSON path; nothing is launched.",
    )
    async def create_export(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        raw = await _body(request, max_body_bytes)
        body = await run_in_threadpool(service.create, who, raw)
        return JSONResponse(body, status_code=202, headers={"Location": f"/v1/exports/{body['id']}"})

    @app.get("/v1/exports", response_model=ExportList, responses=_errors(422),
             summary="List the tenant's exports, newest first")
    def list_exports(
        request: Request,
        status: str | None = None,
        format: str | None = None,
        tag: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        limit: str | None = None,
        cursor: str | None = None,
        who: Caller = Depends(caller),
    ) -> dict[str, Any]:
        return service.list(who, dict(request.query_params))

    @app.get("/v1/exports/{export_id}", response_model=ExportResource, responses=_errors(404),
             summary="View an export (its URL is signed afresh)")
    def get_export(export_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        return service.view(who, export_id)

    @app.delete("/v1/exports/{export_id}", status_code=204, responses=_errors(404),
                summary="Cancel an export if unfinished, delete its file, forget it")
    def delete_export(export_id: str, who: Caller = Depends(caller)) -> Response:
        service.delete(who, export_id)
        return Response(status_code=204)

    return app


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused (413) past ``limit`` bytes before any of it is parsed."""
    too_large = ApiError(413, {"reason": "body_too_large", "message": f"a request body is at most {limit} bytes"})
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
