"""A small fake Grafana for the provisioning tests: the few HTTP API endpoints that
dashboards/provision.py calls, shaped as Grafana's HTTP API documentation describes them
(https://grafana.com/docs/grafana/latest/developers/http_api/), on a free loopback port.

    GET  /api/health                    no authentication, as in Grafana
    GET  /api/folders/:uid              404 {"message": "folder not found"}
    POST /api/folders                   {"uid", "title"}
    PUT  /api/folders/:uid              {"title", "version" | "overwrite"}
    GET  /api/datasources/uid/:uid      404 {"message": "Data source not found"}
    POST /api/datasources               -> {"datasource", "id", "message", "name"}
    PUT  /api/datasources/uid/:uid      replaces the data source, as Grafana does
    GET  /api/dashboards/uid/:uid       -> {"dashboard", "meta": {"folderUid", ...}}
    POST /api/dashboards/db             {"dashboard", "folderUid", "overwrite", "message"}

Anything else is a 404, so a client calling an endpoint this fake lacks fails its test.
Every request is recorded as (method, path) so tests can count the writes. Requests in
absolute form (the fake used as an HTTP proxy) are served too and recorded in `proxied`.
"""

from __future__ import annotations

import base64
import copy
import http.server
import itertools
import json
import re
import threading
import urllib.parse
from typing import Any, Callable, Optional

Answer = tuple[int, Any]  # status, JSON body (or text for the non-Grafana modes)
STAMP = "2026-01-01T00:00:00Z"
NOT_FOUND: Answer = (404, {"message": "Not found"})
DATASOURCE_DEFAULTS: dict[str, Any] = {
    "access": "proxy", "url": "", "user": "", "database": "", "basicAuth": False,
    "basicAuthUser": "", "withCredentials": False, "isDefault": False, "jsonData": {},
}


class FakeGrafana:
    """mode "grafana"; "404": a web server that knows no /api (404 everywhere);
    "html": a web server answering an HTML page to everything."""

    def __init__(self, *, token: str = "test-token", user: str = "admin",
                 password: str = "admin-secret", viewer_token: str = "viewer-token",
                 mode: str = "grafana", prefix: str = "") -> None:
        self.token, self.user, self.password = token, user, password
        self.viewer_token, self.mode, self.prefix = viewer_token, mode, prefix.rstrip("/")
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}  # uid -> {dashboard, folderUid, ...}
        self.requests: list[tuple[str, str]] = []
        self.proxied: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._server: Optional[_Server] = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Answer]]] = [
            ("GET", re.compile(r"/api/folders/([^/]+)"), self._get_folder),
            ("POST", re.compile(r"/api/folders"), self._create_folder),
            ("PUT", re.compile(r"/api/folders/([^/]+)"), self._update_folder),
            ("GET", re.compile(r"/api/datasources/uid/([^/]+)"), self._get_datasource),
            ("POST", re.compile(r"/api/datasources"), self._create_datasource),
            ("PUT", re.compile(r"/api/datasources/uid/([^/]+)"), self._update_datasource),
            ("GET", re.compile(r"/api/dashboards/uid/([^/]+)"), self._get_dashboard),
            ("POST", re.compile(r"/api/dashboards/db"), self._save_dashboard),
        ]

    # --- life -----------------------------------------------------------------------

    def start(self) -> FakeGrafana:
        handler = type("Handler", (_Handler,), {"grafana": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGrafana:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def writes(self) -> list[tuple[str, str]]:
        with self._lock:
            return [request for request in self.requests if request[0] != "GET"]

    # --- what someone does in Grafana's UI --------------------------------------------

    def edit_dashboard(self, uid: str, **changes: Any) -> None:
        with self._lock:
            record = self.dashboards[uid]
            record["dashboard"].update(changes)
            record["dashboard"]["version"] += 1

    def move_dashboard(self, uid: str, folder_uid: str) -> None:
        with self._lock:
            self.dashboards[uid]["folderUid"] = folder_uid

    # --- HTTP -------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, Any]:
        if "://" in target:  # absolute form: a client that took us for its proxy
            self.proxied.append(target)
        path = urllib.parse.urlsplit(target).path
        with self._lock:
            self.requests.append((method, path))
            if self.mode == "404":
                return 404, "404 page not found\n"
            if self.mode == "html":
                return 200, "<!doctype html><title>Welcome</title><p>It works.</p>"
            if not path.startswith(self.prefix + "/"):
                return NOT_FOUND
            path = path[len(self.prefix):]
            if method == "GET" and path == "/api/health":
                return 200, {"commit": "0123456789", "database": "ok", "version": "11.6.0"}
            role = self._role(headers.get("Authorization", ""))
            if role is None:
                return 401, {"message": "Unauthorized", "messageId": "auth.unauthorized",
                             "statusCode": 401}
            try:
                data = json.loads(body) if body else None
            except ValueError:
                return 400, {"message": "bad request data"}
            for route_method, pattern, action in self._routes:
                match = pattern.fullmatch(path)
                if match and route_method == method:
                    if method != "GET" and role != "Admin":
                        needed = f"{path.split('/')[2]}:{'write' if method == 'PUT' else 'create'}"
                        return 403, {"message": "You'll need additional permissions to "
                                                f"perform this action. Permissions needed: "
                                                f"{needed}"}
                    return action(*match.groups(), data)
            return NOT_FOUND

    def _role(self, authorization: str) -> Optional[str]:
        scheme, _, value = authorization.partition(" ")
        if scheme == "Bearer":
            return {self.token: "Admin", self.viewer_token: "Viewer"}.get(value)
        if scheme == "Basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return None
            return "Admin" if (user, password) == (self.user, self.password) else None
        return None

    # --- folders ----------------------------------------------------------------------

    def _folder_view(self, folder: dict[str, Any]) -> dict[str, Any]:
        slug = _slug(folder["title"])
        return {**folder, "url": f"/dashboards/f/{folder['uid']}/{slug}", "hasAcl": False,
                "canSave": True, "canEdit": True, "canAdmin": True, "canDelete": True,
                "createdBy": "admin", "created": STAMP, "updatedBy": "admin",
                "updated": STAMP}

    def _get_folder(self, uid: str, _data: Any = None) -> Answer:
        folder = self.folders.get(uid)
        if folder is None:
            return 404, {"message": "folder not found"}
        return 200, self._folder_view(folder)

    def _create_folder(self, data: Any = None) -> Answer:
        title = (data or {}).get("title", "").strip()
        uid = (data or {}).get("uid") or f"f{next(self._ids)}"
        if not title:
            return 400, {"message": "folder title cannot be empty"}
        if uid in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        if any(folder["title"] == title for folder in self.folders.values()):
            return 409, {"message": "a folder or dashboard in the general folder with the "
                                    "same name already exists"}
        self.folders[uid] = {"id": next(self._ids), "uid": uid, "title": title, "version": 1}
        return 200, self._folder_view(self.folders[uid])

    def _update_folder(self, uid: str, data: Any = None) -> Answer:
        folder, data = self.folders.get(uid), data or {}
        if folder is None:
            return 404, {"message": "folder not found"}
        if not data.get("overwrite") and data.get("version") != folder["version"]:
            return 412, {"message": "the folder has been changed by someone else",
                         "status": "version-mismatch"}
        if data.get("title"):
            folder["title"] = data["title"]
        folder["version"] += 1
        return 200, self._folder_view(folder)

    # --- data sources -----------------------------------------------------------------

    def _get_datasource(self, uid: str, _data: Any = None) -> Answer:
        datasource = self.datasources.get(uid)
        if datasource is None:
            return 404, {"message": "Data source not found"}
        return 200, copy.deepcopy(datasource)

    def _datasource_from(self, data: dict[str, Any], keep: dict[str, Any]) -> dict[str, Any]:
        """What Grafana stores: the body's fields over the defaults (a PUT resets what it
        leaves out), plus what Grafana itself owns."""
        fields = {key: copy.deepcopy(data[key]) for key in
                  ("name", "type", *DATASOURCE_DEFAULTS) if key in data}
        return {**copy.deepcopy(DATASOURCE_DEFAULTS), **fields, "orgId": 1,
                "typeLogoUrl": f"public/app/plugins/datasource/{data['type']}/img/logo.svg",
                "password": "", "secureJsonFields": {}, "readOnly": False, **keep}

    def _create_datasource(self, data: Any = None) -> Answer:
        data = data or {}
        if not data.get("name") or not data.get("type"):
            return 400, {"message": "Required data source name and type"}
        uid = data.get("uid") or f"d{next(self._ids)}"
        if uid in self.datasources:
            return 409, {"message": "data source with the same uid already exists"}
        if any(ds["name"] == data["name"] for ds in self.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        datasource = self._datasource_from(data, {"id": next(self._ids), "uid": uid,
                                                  "version": 1})
        self.datasources[uid] = datasource
        return 200, {"datasource": copy.deepcopy(datasource), "id": datasource["id"],
                     "message": "Datasource added", "name": datasource["name"]}

    def _update_datasource(self, uid: str, data: Any = None) -> Answer:
        existing, data = self.datasources.get(uid), data or {}
        if existing is None:
            return 404, {"message": "Data source not found"}
        if existing["readOnly"]:
            return 403, {"message": "Cannot update read-only data source"}
        if not data.get("name") or not data.get("type"):
            return 400, {"message": "Required data source name and type"}
        if data.get("version") and data["version"] < existing["version"]:
            return 409, {"message": "Datasource has already been updated by someone else. "
                                    "Please reload and try again"}
        datasource = self._datasource_from(data, {"id": existing["id"], "uid": uid,
                                                  "version": existing["version"] + 1})
        self.datasources[uid] = datasource
        return 200, {"datasource": copy.deepcopy(datasource), "id": datasource["id"],
                     "message": "Datasource updated", "name": datasource["name"]}

    # --- dashboards -------------------------------------------------------------------

    def _get_dashboard(self, uid: str, _data: Any = None) -> Answer:
        record = self.dashboards.get(uid)
        if record is None:
            return 404, {"message": "Dashboard not found"}
        dashboard, folder = record["dashboard"], self.folders.get(record["folderUid"])
        slug = _slug(dashboard["title"])
        meta = {"type": "db", "canSave": True, "canEdit": True, "canAdmin": True,
                "canStar": True, "canDelete": True, "slug": slug, "url": f"/d/{uid}/{slug}",
                "expires": "0001-01-01T00:00:00Z", "created": STAMP, "updated": STAMP,
                "updatedBy": "admin", "createdBy": "admin", "version": dashboard["version"],
                "hasAcl": False, "isFolder": False,
                "folderId": folder["id"] if folder else 0,
                "folderUid": folder["uid"] if folder else "",
                "folderTitle": folder["title"] if folder else "General",
                "folderUrl": self._folder_view(folder)["url"] if folder else "",
                "provisioned": False, "provisionedExternalId": ""}
        return 200, {"dashboard": copy.deepcopy(dashboard), "meta": meta}

    def _save_dashboard(self, data: Any = None) -> Answer:
        data = data or {}
        dashboard = data.get("dashboard")
        if not isinstance(dashboard, dict):
            return 400, {"message": "bad request data"}
        title = str(dashboard.get("title") or "").strip()
        if not title:
            return 400, {"message": "Dashboard title cannot be empty"}
        folder_uid = data.get("folderUid") or ""
        if folder_uid and folder_uid not in self.folders:
            return 400, {"message": "folder not found"}
        uid = dashboard.get("uid") or f"u{next(self._ids)}"
        existing = self.dashboards.get(uid)
        if existing and not data.get("overwrite") \
                and dashboard.get("version") != existing["dashboard"]["version"]:
            return 412, {"status": "version-mismatch",
                         "message": "The dashboard has been changed by someone else"}
        if any(other_uid != uid and record["folderUid"] == folder_uid
               and record["dashboard"]["title"] == title
               for other_uid, record in self.dashboards.items()):
            return 412, {"status": "name-exists", "message": "A dashboard with the same "
                                                             "name in the folder already exists"}
        number = existing["dashboard"]["id"] if existing else next(self._ids)
        version = existing["dashboard"]["version"] + 1 if existing else 1
        stored = {**copy.deepcopy(dashboard), "id": number, "uid": uid, "version": version}
        self.dashboards[uid] = {"dashboard": stored, "folderUid": folder_uid,
                                "message": data.get("message", "")}
        return 200, {"id": number, "uid": uid, "url": f"/d/{uid}/{_slug(title)}",
                     "status": "success", "version": version, "slug": _slug(title)}


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as niquests' pool expects
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK wait
    grafana: FakeGrafana

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload = self.grafana.handle(self.command, self.path, self.headers, body)
        if isinstance(payload, str):
            data = payload.encode()
            kind = "text/html; charset=utf-8" if payload.startswith("<") \
                else "text/plain; charset=utf-8"
        else:
            data, kind = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early
