"""Put the commune-watch folder, data sources and dashboards into a running Grafana through
its HTTP API (the `grafana-client` package), idempotently.

Each object is read first (folder, data source and dashboard by uid) and written only when
it differs from what we ship, so a second run makes no write at all and reports every
object "unchanged". What counts as "differs":

* folder: its title;
* data source: only the fields datasource_models() sets (jsonData key by key); an update
  keeps what an admin added in Grafana's UI (basic auth, extra jsonData keys);
* dashboard: its JSON without the keys Grafana sets itself ("id", "version"), and the
  folder it is in (meta.folderUid). A dashboard edited in the UI is put back.

Grafana is checked first with GET /api/health (no authentication, as in Grafana), so an
address that is not Grafana gets its own error, apart from a bad token.

Proxies: grafana-client's HTTP library (niquests) honours http_proxy / https_proxy /
no_proxy like `requests`, and a loopback host is *not* exempt unless no_proxy says so. For
a Grafana on this machine (localhost, 127.0.0.0/8, ::1) we switch the session's
`trust_env` off, so a proxy of the environment cannot get in the way; that also skips
~/.netrc and $REQUESTS_CA_BUNDLE, which do not matter for a loopback address. Any other
host goes through the environment's proxy settings, as every HTTP client there does.
niquests reads those settings once per process (functools.lru_cache on getproxies()).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import niquests
from grafana_client import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
)
from niquests.packages.urllib3.exceptions import InsecureRequestWarning

import cwatch
from dashboards import files
from dashboards.datasources import DEFAULT_PROMETHEUS_URL, DEFAULT_VM_URL, datasource_models

FOLDER_TITLE = "commune-watch"
FOLDER_UID = "commune-watch"
TIMEOUT_S = 10.0

# Keys Grafana sets on a dashboard itself; they never count as a difference.
GRAFANA_DASHBOARD_KEYS = ("id", "version")
# Data source fields we do not set but keep on an update: PUT replaces the whole data
# source, and these may have been set in Grafana's UI ("version" guards against a
# concurrent edit).
KEPT_DATASOURCE_FIELDS = ("user", "database", "basicAuth", "basicAuthUser",
                          "withCredentials", "version")


class ProvisionError(Exception):
    """One line for the user; `usage` marks a mistake in what was asked (URL, credentials)
    rather than something Grafana did or did not do."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


class _Refused(ProvisionError):
    """Grafana answered a request with a 4xx/5xx other than 401/403."""

    def __init__(self, message: str, status: int, grafana_message: str) -> None:
        super().__init__(message)
        self.status, self.grafana_message = status, grafana_message


class Item(NamedTuple):
    kind: str  # "folder", "datasource" or "dashboard"
    uid: str
    title: str
    action: str  # "created", "updated" or "unchanged"


@dataclass
class ProvisionReport:
    url: str
    folder_uid: str
    items: list[Item] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for item in self.items if item.action == action)

    @property
    def changed(self) -> bool:
        return any(item.action != "unchanged" for item in self.items)

    def summary(self) -> str:
        kinds = Counter(item.kind for item in self.items)
        what = ", ".join(f"{kinds[kind]} {name}{'' if kinds[kind] == 1 else 's'}"
                         for kind, name in (("folder", "folder"), ("datasource", "data source"),
                                            ("dashboard", "dashboard")) if kinds[kind])
        return (f"Grafana {self.url}: {self.count('created')} created, "
                f"{self.count('updated')} updated, {self.count('unchanged')} unchanged "
                f"({what or 'nothing'}; folder {self.folder_uid})")


# --- what was asked ---------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where Grafana is, checked; `url` is for messages (no user info, no trailing /)."""

    url: str
    scheme: str
    host: str
    port: int | None
    path: str  # "" or "grafana/" (a sub-path, as GrafanaApi's url_path_prefix)
    verify: bool  # TLS certificate check, off with ?verify=false as in from_url()
    url_user: str | None
    url_password: str | None


def check_url(url: str | None) -> Target:
    """http(s)://[user:password@]HOST[:PORT][/PATH][?verify=false], else ProvisionError."""
    text = (url or "").strip()
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:  # a bad port
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.fragment:
        raise ProvisionError(f"Grafana URL {_redact(text)!r} must look like "
                             "http(s)://HOST[:PORT][/PATH]", usage=True)
    path = parts.path.strip("/")
    verify = urllib.parse.parse_qs(parts.query).get("verify", ["true"])[0].lower()
    shown = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2],
                                     "/" + path if path else "", "", ""))
    return Target(shown, parts.scheme, parts.hostname, port, path + "/" if path else "",
                  verify not in ("false", "0", "no", "off"),
                  urllib.parse.unquote(parts.username) if parts.username else None,
                  urllib.parse.unquote(parts.password) if parts.password else None)


def _redact(url: str) -> str:
    """The URL without a password in it, for messages."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{tail}"


def credential(token: str | None, user: str | None, password: str | None,
               target: Target | None = None) -> str | tuple[str, str]:
    """A token (sent as Bearer) or (user, password) (Basic); exactly one of the two.
    A user and password in the URL count when nothing else is given."""
    if target is not None and not (token or user or password) and target.url_user:
        user, password = target.url_user, target.url_password
    if token and (user or password):
        raise ProvisionError("give either a service-account token or a user and password, "
                             "not both", usage=True)
    if token:
        return token
    if user and password:
        return (user, password)
    if user or password:
        raise ProvisionError("a user needs a password, and a password a user", usage=True)
    raise ProvisionError("no credentials: give a service-account token, or a user and "
                         "password", usage=True)


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- talking to Grafana -----------------------------------------------------------------


def _grafana_message(exc: GrafanaException) -> str:
    """Grafana's own {"message": ...}, else the start of the answer's text, on one line."""
    response = exc.response
    if isinstance(response, dict) and response.get("message"):
        text = str(response["message"])
    elif isinstance(response, str) and response.strip():
        text = response
    else:
        text = exc.message or ""
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def _unreachable_reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (("refused", "connection refused"),
                           ("resolve", "the host name does not resolve"),
                           ("Name or service not known", "the host name does not resolve"),
                           ("timed out", "no answer in time"),
                           ("certificate", "TLS certificate not accepted"),
                           ("SSL", "TLS failed")):
        if needle in text:
            return reason
    return " ".join(text.split())[:200]


class _Grafana:
    """GrafanaApi with every failure turned into one ProvisionError line."""

    def __init__(self, target: Target, auth: str | tuple[str, str], timeout: float) -> None:
        self.target, self.timeout = target, timeout
        self.by_token = isinstance(auth, str)
        self.user = None if isinstance(auth, str) else auth[0]
        # The constructor rather than GrafanaApi.from_url(): from_url() puts an IPv6
        # address in the URL without brackets, and a sub-path without its final "/"
        # ("/grafana" -> "/grafanaapi").
        host = f"[{target.host}]" if ":" in target.host else target.host
        self.api = GrafanaApi(auth, host=host, port=target.port, url_path_prefix=target.path,
                              protocol=target.scheme, verify=target.verify, timeout=timeout)
        if not target.verify:  # asked for: no warning on every request
            warnings.filterwarnings("ignore", category=InsecureRequestWarning)
        if _is_loopback(target.host):
            self.api.client.s.trust_env = False  # see the module's docstring

    def close(self) -> None:
        self.api.client.s.close()

    def call(self, endpoint: str, fn: Callable[..., Any], *args: Any,
             missing_ok: bool = False, **kwargs: Any) -> Any:
        """fn(*args, **kwargs); None for a 404 if missing_ok. `endpoint` ("GET /api/...")
        names the request in messages."""
        url = self.target.url
        try:
            return fn(*args, **kwargs)
        except GrafanaClientError as exc:  # 4xx, 401 included
            status, message = exc.status_code, _grafana_message(exc)
            if status == 404 and missing_ok:
                return None
            if status == 401:
                raise ProvisionError(self._unauthorized(endpoint)) from None
            if status == 403:
                raise ProvisionError(
                    f"Grafana at {url} refused {endpoint} (403: {message}): "
                    f"{'the token' if self.by_token else f'user {self.user!r}'} lacks the "
                    "rights; it needs the Admin role of the organization (data sources "
                    "need it)") from None
            raise _Refused(f"Grafana at {url} refused {endpoint}: {status} {message}",
                           status, message) from None
        except GrafanaServerError as exc:
            raise ProvisionError(f"Grafana at {url} failed on {endpoint}: "
                                 f"{exc.status_code} {_grafana_message(exc)}") from None
        except GrafanaTimeoutError:
            raise ProvisionError(f"cannot reach Grafana at {url}{self._through()}: no "
                                 f"answer within {self.timeout:g} s") from None
        except (niquests.exceptions.ConnectionError, GrafanaException) as exc:
            # grafana-client lets niquests' ConnectionError through unwrapped.
            raise ProvisionError(f"cannot reach Grafana at {url}{self._through()}: "
                                 f"{_unreachable_reason(exc)}") from None
        except niquests.exceptions.RequestException as exc:  # JSON that is not, ...
            raise ProvisionError(f"{url} does not answer as Grafana ({endpoint}: "
                                 f"{type(exc).__name__})") from None

    def _through(self) -> str:
        """Words naming the environment's proxy, when one was used."""
        if not self.api.client.s.trust_env:
            return ""
        proxies = niquests.utils.get_environ_proxies(self.api.client.url)
        proxy = proxies.get(self.target.scheme) or proxies.get("all")
        return f" through the proxy {_redact(proxy)} (see no_proxy)" if proxy else ""

    def _unauthorized(self, endpoint: str) -> str:
        who = ("the service-account token (wrong, expired or revoked?)" if self.by_token
               else f"user {self.user!r} and its password (or basic auth is off there)")
        return f"Grafana at {self.target.url} did not accept {who}: 401 on {endpoint}"

    def check_health(self) -> None:
        """GET /api/health, which every Grafana answers without authentication.
        grafana-client's health.check() reads /api/frontend/settings instead, which needs
        a signed-in user: a bad token would then look like a wrong address."""
        url = self.target.url
        try:
            health = self.call("GET /api/health", self.api.client.GET, "/health")
        except _Refused as exc:
            raise ProvisionError(f"{url} does not answer as Grafana (GET /api/health: "
                                 f"{exc.status}: {exc.grafana_message}); is the address, "
                                 "and its path if Grafana runs under one, right?") from None
        if not isinstance(health, dict) or "database" not in health:
            raise ProvisionError(f"{url} does not answer as Grafana (GET /api/health did "
                                 "not return Grafana's health JSON)")
        if health["database"] != "ok":
            raise ProvisionError(f"Grafana at {url} is not healthy: database "
                                 f"{health['database']}")


# --- the three kinds of objects ---------------------------------------------------------


def _folder(grafana: _Grafana, uid: str, title: str) -> Item:
    api = grafana.api.folder
    existing = grafana.call(f"GET /api/folders/{uid}", api.get_folder, uid, missing_ok=True)
    if existing is None:
        grafana.call("POST /api/folders", api.create_folder, title, uid=uid)
        return Item("folder", uid, title, "created")
    if existing.get("title") == title:
        return Item("folder", uid, title, "unchanged")
    version = existing.get("version")
    grafana.call(f"PUT /api/folders/{uid}", api.update_folder, uid, title=title,
                 version=version, overwrite=not version)
    return Item("folder", uid, title, "updated")


def _datasource_differs(existing: dict[str, Any], model: dict[str, Any]) -> bool:
    for key, want in model.items():
        if key == "jsonData":
            have = existing.get("jsonData") or {}
            if any(have.get(name) != value for name, value in want.items()):
                return True
        elif existing.get(key) != want:
            return True
    return False


def _datasource(grafana: _Grafana, model: dict[str, Any]) -> Item:
    api, uid, name = grafana.api.datasource, model["uid"], model["name"]
    existing = grafana.call(f"GET /api/datasources/uid/{uid}", api.get_datasource_by_uid,
                            uid, missing_ok=True)
    if existing is None:
        grafana.call("POST /api/datasources", api.create_datasource, model)
        return Item("datasource", uid, name, "created")
    if not _datasource_differs(existing, model):
        return Item("datasource", uid, name, "unchanged")
    if existing.get("readOnly"):
        raise ProvisionError(f"data source {uid} differs in Grafana at {grafana.target.url} "
                             "but is read-only there (file-provisioned): change it in "
                             "Grafana's provisioning files instead")
    body = {key: existing[key] for key in KEPT_DATASOURCE_FIELDS if key in existing}
    body.update(model, jsonData={**(existing.get("jsonData") or {}), **model["jsonData"]})
    grafana.call(f"PUT /api/datasources/uid/{uid}", api.update_datasource_by_uid, uid, body)
    return Item("datasource", uid, name, "updated")


def _comparable(dashboard: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in dashboard.items()
            if key not in GRAFANA_DASHBOARD_KEYS}


def _dashboard(grafana: _Grafana, dashboard: dict[str, Any], folder_uid: str) -> Item:
    api, uid = grafana.api.dashboard, dashboard["uid"]
    title = str(dashboard.get("title", ""))
    existing = grafana.call(f"GET /api/dashboards/uid/{uid}", api.get_dashboard, uid,
                            missing_ok=True)
    meta = (existing or {}).get("meta") or {}
    if existing is not None and meta.get("folderUid") == folder_uid \
            and _comparable(existing.get("dashboard") or {}) == _comparable(dashboard):
        return Item("dashboard", uid, title, "unchanged")
    body = {"dashboard": {**_comparable(dashboard), "id": None}, "folderUid": folder_uid,
            "overwrite": True,
            "message": f"commune-watch {cwatch.__version__}: cwatch dashboards provision"}
    try:
        grafana.call("POST /api/dashboards/db", api.update_dashboard, body)
    except _Refused as exc:
        hint = " (it is file-provisioned there)" if meta.get("provisioned") else ""
        raise ProvisionError(f"Grafana at {grafana.target.url} refused dashboard {uid}"
                             f"{hint}: {exc.status} {exc.grafana_message}") from None
    return Item("dashboard", uid, title, "created" if existing is None else "updated")


def _check_dashboards(dashboards: Sequence[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for dashboard in dashboards:
        uid = dashboard.get("uid") if isinstance(dashboard, dict) else None
        if not isinstance(uid, str) or not uid:
            title = dashboard.get("title") if isinstance(dashboard, dict) else None
            raise ProvisionError(f"dashboard {title!r} has no uid: a provisioned dashboard "
                                 "needs one to be found again")
        if uid in seen:
            raise ProvisionError(f"two dashboards have the uid {uid}")
        seen.add(uid)


# --- the whole ---------------------------------------------------------------------------


def provision(url: str, *, token: str | None = None, user: str | None = None,
              password: str | None = None, vm_url: str = DEFAULT_VM_URL,
              prometheus_url: str = DEFAULT_PROMETHEUS_URL,
              folder_title: str = FOLDER_TITLE, folder_uid: str = FOLDER_UID,
              dashboards: Iterable[dict[str, Any]] | None = None,
              timeout: float = TIMEOUT_S,
              progress: Callable[[Item], None] | None = None) -> ProvisionReport:
    """Create or update the folder, the two data sources and each dashboard (default: the
    shipped ones, files.load_all()) in the Grafana at `url`. Raises ProvisionError."""
    target = check_url(url)
    auth = credential(token, user, password, target)
    wanted = list(files.load_all() if dashboards is None else dashboards)
    _check_dashboards(wanted)
    report = ProvisionReport(target.url, folder_uid)

    def done(item: Item) -> None:
        report.items.append(item)
        if progress is not None:
            progress(item)

    grafana = _Grafana(target, auth, timeout)
    try:
        grafana.check_health()
        done(_folder(grafana, folder_uid, folder_title))
        for model in datasource_models(vm_url, prometheus_url):
            done(_datasource(grafana, model))
        for dashboard in wanted:
            done(_dashboard(grafana, dashboard, folder_uid))
    finally:
        grafana.close()
    return report
