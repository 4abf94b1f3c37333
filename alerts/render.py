"""Findings -> e-mail: subject, plain-text and HTML parts, in the recipient's language.

Templates are Jinja2 files in alerts/templates/; the words around them come from
gettext catalogs (alerts/locale/<lang>/LC_MESSAGES/messages.po, compiled by Babel when
first used). What each finding measured is in the finding itself (its summary, in
English and Vietnamese, written by the rule engine).
"""

from __future__ import annotations

import datetime as dt
import email.policy
import functools
from collections.abc import Callable
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import jinja2
from babel.dates import format_datetime, format_timedelta
from babel.support import NullTranslations
from zoneinfo import ZoneInfo

from alerts.config import Recipient
from cwatch.i18n import load_translations

PACKAGE_DIR = Path(__file__).parent
LOCALE_DIR = PACKAGE_DIR / "locale"
TEMPLATE_DIR = PACKAGE_DIR / "templates"
SUBJECT_PREFIX = "[commune-watch]"
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def N_(text: str) -> str:
    """Marks a string for the catalog; it is translated where it is shown."""
    return text


ADVICE = {
    "smart_failed": N_("The disk reports that it is failing: back up this PC's data today "
                       "and replace the disk."),
    "disk_failing": N_("The disk is wearing out: back up the data and plan a replacement "
                       "within weeks."),
    "nvme_worn": N_("The SSD is near the end of its rated life: back up the data and plan "
                    "a replacement."),
    "overheating": N_("Clean the dust from the fans and heatsink, check that the fan turns "
                      "and that the PC has air around it."),
    "memory_pressure": N_("Close programs that are not needed; if it goes on, add RAM (the "
                          "cheapest upgrade for a slow PC)."),
    "disk_full": N_("Free up space (old downloads, temporary files, the recycle bin) or fit "
                    "a larger disk."),
    "unexpected_reboots": N_("Check the power cable, the UPS and the power supply, then the "
                             "system's event log."),
    "cpu_saturated": N_("This PC is too slow for its work during office hours: consider it "
                        "for an upgrade."),
    "battery_worn": N_("Replace the laptop battery or keep the laptop on mains power."),
    "os_end_of_support": N_("The operating system no longer gets security updates: plan an "
                            "upgrade or a replacement."),
    "windows11_incapable": N_("This PC cannot run Windows 11: plan its replacement."),
    "device_silent": N_("Check that the device is switched on and connected to the network, "
                        "and that the commune-watch agent is running."),
    "site_unreachable": N_("Call the commune: check the router, the power and the internet "
                           "line; report a line fault to the provider."),
    "slow_link": N_("The commune's internet link is slow: restart the router and, if it "
                    "goes on, report it to the provider with these measurements."),
    "local_network": N_("The fault is inside the office network: check the switch, the "
                        "cables and the router."),
    "dns_slow": N_("Name lookups are slow: check the router's DNS settings."),
    "interface_errors": N_("A network port or its cable is faulty: reseat or replace the "
                           "cable, try another port, check both ends agree on speed and "
                           "duplex."),
    "interface_discards": N_("The device drops packets because it cannot keep up: check for "
                             "a loop or a flood on the network, then consider a stronger "
                             "device."),
    "wan_saturated": N_("The internet link is full for long periods: find what uses it "
                        "(updates, video) or ask the provider for a faster plan."),
    "lan_loss": N_("Pings to this device are lost inside the office: check its power, its "
                   "cable and the switch port, then the device itself."),
    "portal_slow": N_("The provincial portal is slow for every commune: the provincial team "
                      "should check the portal's servers, not the communes."),
}
SEVERITIES = {"critical": N_("critical"), "warning": N_("warning"), "info": N_("info")}
# The suggested actions of collector/rules/priority.py, for the digest.
ACTIONS = (N_("replace the router"), N_("replace the switch"), N_("replace the machine"),
           N_("replace the HDD with an SSD"), N_("replace the disk"), N_("add RAM"),
           N_("replace the battery"), N_("upgrade the operating system"), N_("upgrade the link"),
           N_("none"))
ROLES = {"service-counter": N_("service counter"), "office": N_("office"),
         "server": N_("server"), "router": N_("router"), "switch": N_("switch"),
         "spare": N_("spare")}


@functools.lru_cache(maxsize=4)
def translations(language: str) -> NullTranslations:
    """The catalog for `language` ("en" is the source language: no catalog)."""
    return load_translations(LOCALE_DIR, language)


@functools.lru_cache(maxsize=4)
def environment(language: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"], undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


class Renderer:
    def __init__(self, sender: str, *, site_names: dict[str, str] | None = None,
                 timezone: str = "Asia/Ho_Chi_Minh", link: str = "",
                 role_of: Callable[[str, str], str | None] | None = None) -> None:
        self.sender = sender
        self.site_names = site_names or {}
        self.zone = ZoneInfo(timezone)
        self.link = link
        self._role_of = role_of or (lambda site, device: None)

    # --- public ------------------------------------------------------------------------------

    def notification(self, recipient: Recipient, place: dict[str, str | None],
                     firing: list[dict[str, Any]], resolved: list[dict[str, Any]],
                     now: float) -> tuple[str, bytes]:
        """(subject, message) for one group: what is firing and what got fixed."""
        lang = recipient.language
        _, ngettext = self._gettext(lang)
        where = self.place(place, lang)
        parts = []
        if firing:
            parts.append(ngettext("%(num)d problem", "%(num)d problems", len(firing))
                         % {"num": len(firing)})
            critical = sum(1 for f in firing if f["severity"] == "critical")
            if critical:
                parts.append(ngettext("%(num)d critical", "%(num)d critical", critical)
                             % {"num": critical})
        if resolved:
            parts.append(ngettext("%(num)d resolved", "%(num)d resolved", len(resolved))
                         % {"num": len(resolved)})
        subject = f"{SUBJECT_PREFIX} {where}: {', '.join(parts)}"
        context = {"place": where, "firing": [self._finding(f, lang, now) for f in
                                              _ordered(firing)],
                   "resolved": [self._finding(f, lang, now) for f in _ordered(resolved)],
                   "now": self._time(now, lang), "link": self.link, "recipient": recipient}
        return subject, self._message(recipient, subject, "notification", context, now)

    def digest(self, recipient: Recipient, open_findings: list[dict[str, Any]],
               resolved: list[dict[str, Any]], priorities: list[dict[str, Any]],
               silenced_ids: set[int], now: float) -> tuple[str, bytes]:
        lang = recipient.language
        gettext, _ = self._gettext(lang)
        day = format_datetime(dt.datetime.fromtimestamp(now, self.zone), "dd/MM/yyyy",
                              locale=lang)
        subject = f"{SUBJECT_PREFIX} " + gettext(
            "Daily summary %(day)s: %(open)d open, %(resolved)d resolved") % {
            "day": day, "open": len(open_findings), "resolved": len(resolved)}
        by_place: dict[str, list[dict[str, Any]]] = {}
        for finding in _ordered(open_findings):
            row = self._finding(finding, lang, now)
            row["silenced"] = finding["id"] in silenced_ids
            by_place.setdefault(row["place"], []).append(row)
        devices = [{**d, "place": self.site_name(d["site"]),
                    "role": self._role(d.get("role"), lang),
                    "because": "; ".join(why["because"] for why in d.get("why", []))}
                   for d in priorities]
        context = {"day": day, "by_place": sorted(by_place.items()),
                   "open_count": len(open_findings),
                   "resolved": [self._finding(f, lang, now) for f in resolved],
                   "priorities": devices, "link": self.link, "recipient": recipient,
                   "now": self._time(now, lang)}
        return subject, self._message(recipient, subject, "digest", context, now)

    def test_message(self, recipient: Recipient, now: float) -> tuple[str, bytes]:
        gettext, _ = self._gettext(recipient.language)
        subject = f"{SUBJECT_PREFIX} " + gettext("Test message")
        context = {"recipient": recipient, "now": self._time(now, recipient.language),
                   "link": self.link}
        return subject, self._message(recipient, subject, "test", context, now)

    def site_name(self, site: str | None) -> str:
        return self.site_names.get(site or "", site or "")

    def place(self, labels: dict[str, str | None], language: str) -> str:
        """A group's name for a subject: "An Phước", "An Phước / pc-01", "Province"."""
        gettext, _ = self._gettext(language)
        parts = []
        if "site" in labels:
            parts.append(self.site_name(labels["site"]) if labels["site"]
                         else gettext("whole province"))
        parts += [gettext(SEVERITIES.get(v or "", v or "")) if k == "severity" else (v or "-")
                  for k, v in labels.items() if k != "site"]
        return " / ".join(parts) or gettext("all findings")

    # --- helpers -----------------------------------------------------------------------------

    def _gettext(self, language: str) -> tuple[Callable[[str], str], Callable[..., str]]:
        catalog = translations(language)
        return catalog.gettext, catalog.ngettext

    def _finding(self, finding: dict[str, Any], lang: str, now: float) -> dict[str, Any]:
        gettext, _ = self._gettext(lang)
        site, device = finding["site"], finding["device"]
        role = self._role_of(site, device) if site and device else None
        ended = finding.get("ended_ts")
        return {
            "id": finding["id"], "finding": finding["finding"], "rule": finding["rule"],
            "severity": gettext(SEVERITIES.get(finding["severity"], finding["severity"])),
            "severity_key": finding["severity"],
            "place": self.site_name(site) if site else gettext("whole province"),
            "site": site or "", "device": device or "", "item": finding["item"],
            "role": self._role(role, lang),
            "summary": finding["summary_vi"] if lang == "vi" else finding["summary"],
            "since": self._time(finding["started_ts"], lang),
            "lasted": format_timedelta((ended or now) - finding["started_ts"], locale=lang),
            "ended": self._time(ended, lang) if ended else "",
            "advice": gettext(ADVICE[finding["finding"]]) if finding["finding"] in ADVICE
            else "",
        }

    def _role(self, role: str | None, lang: str) -> str:
        if not role:
            return ""
        gettext, _ = self._gettext(lang)
        return gettext(ROLES[role]) if role in ROLES else role

    def _time(self, ts: float, lang: str) -> str:
        return format_datetime(dt.datetime.fromtimestamp(ts, self.zone), "HH:mm dd/MM/yyyy",
                               locale=lang)

    def _message(self, recipient: Recipient, subject: str, template: str,
                 context: dict[str, Any], now: float) -> bytes:
        env = environment(recipient.language)
        text = env.get_template(f"{template}.txt").render(context)
        html = env.get_template(f"{template}.html").render(context)
        # The legacy MIME classes and Header: the modern email API's header folding
        # drops the space between two encoded words (a long Vietnamese subject would
        # arrive as "...2026:1 đang mở"); Header encodes the spaces inside the words.
        message = MIMEMultipart("alternative")
        message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")
        message["From"] = formataddr(parseaddr(self.sender), charset="utf-8")
        message["To"] = formataddr((recipient.name, recipient.email), charset="utf-8")
        message["Date"] = formatdate(now)
        message["Message-ID"] = make_msgid(domain="commune-watch")
        message["Auto-Submitted"] = "auto-generated"  # no out-of-office replies to us
        message.attach(MIMEText(text, "plain", "utf-8"))
        message.attach(MIMEText(html, "html", "utf-8"))
        return message.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))


def _ordered(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f["severity"], 9),
                                          f["site"] or "", f["device"] or "", f["rule"],
                                          f["item"]))
