"""SNMP I/O for one polled device: the only module that imports pysnmp, and only when used.

pysnmp 7 needs Python 3.10+, and the [snmp] extra is optional: `unavailable_reason()` says
why SNMP cannot be used here, and the poller then pings the devices instead. Answers come
back as plain Python values (bytes, int, dotted OID strings), so the rest of the poller
never sees a pysnmp type:

    read() --GET--------> sysDescr, sysName, uptimes ...    -> Answer.scalars
           --GETBULK----> ifTable + ifXTable columns         -> Answer.tables
           --GETBULK----> hrProcessorLoad, hrStorage columns -> Answer.tables
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from agent.config import PolledDeviceSection
from agent.snmp import oids

# Variables per GETBULK response: small enough for a cheap router's 1,500-byte limit.
MAX_VARBINDS = 60
MAX_WALK_REQUESTS = 500  # a device whose table never ends does not keep us for ever
TOO_BIG = 1  # SNMP error-status tooBig

log = logging.getLogger(__name__)

Oid = Tuple[int, ...]


class SnmpError(Exception):
    """The device did not answer usefully; str() is one line for the log."""


class Answer(NamedTuple):
    """What one poll read, as plain values; anything the device lacks is simply absent."""

    scalars: Dict[str, Any]  # oids.SCALARS name -> value
    tables: Dict[str, Dict[str, Any]]  # column name -> {row index ("3", "1.2"): value}


def unavailable_reason() -> Optional[str]:
    """None when SNMP can be used here, else why not (one line)."""
    if sys.version_info < (3, 10):
        return ("SNMP needs Python 3.10 or newer (pysnmp 7); this is Python {}.{}"
                .format(*sys.version_info[:2]))
    try:
        import pysnmp.hlapi.v3arch.asyncio  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install of it
        return f"pysnmp is not installed or broken ({type(exc).__name__}: {exc})"
    return None


def _hlapi() -> Any:
    import pysnmp.hlapi.v3arch.asyncio as hlapi

    return hlapi


def _auth_protocols(hlapi: Any) -> Dict[str, Any]:
    return {
        "none": hlapi.USM_AUTH_NONE, "md5": hlapi.USM_AUTH_HMAC96_MD5,
        "sha": hlapi.USM_AUTH_HMAC96_SHA, "sha224": hlapi.USM_AUTH_HMAC128_SHA224,
        "sha256": hlapi.USM_AUTH_HMAC192_SHA256, "sha384": hlapi.USM_AUTH_HMAC256_SHA384,
        "sha512": hlapi.USM_AUTH_HMAC384_SHA512,
    }


def _priv_protocols(hlapi: Any) -> Dict[str, Any]:
    return {
        "none": hlapi.USM_PRIV_NONE, "des": hlapi.USM_PRIV_CBC56_DES,
        "3des": hlapi.USM_PRIV_CBC168_3DES, "aes": hlapi.USM_PRIV_CFB128_AES,
        "aes192": hlapi.USM_PRIV_CFB192_AES_BLUMENTHAL,
        "aes256": hlapi.USM_PRIV_CFB256_AES_BLUMENTHAL,
        "aes192c": hlapi.USM_PRIV_CFB192_AES, "aes256c": hlapi.USM_PRIV_CFB256_AES,
    }


def _oid(text: str) -> Oid:
    return tuple(int(part) for part in text.split("."))


def plain(value: Any) -> Any:
    """A pysnmp value as bytes, int or a dotted OID string; None for the 'no value' kinds
    (noSuchObject, noSuchInstance, endOfMibView, NULL)."""
    from pyasn1.type import univ

    if isinstance(value, univ.Null):
        return None
    if isinstance(value, univ.ObjectIdentifier):
        return ".".join(str(part) for part in value)
    if isinstance(value, univ.OctetString):  # also IpAddress, Opaque
        return value.asOctets()
    if isinstance(value, univ.Integer):  # also Counter32/64, Gauge32, TimeTicks
        return int(value)
    return None


class SnmpSession:
    """SNMP v2c or v3 requests to one device. Use from one asyncio loop only."""

    def __init__(self, device: PolledDeviceSection) -> None:
        if device.snmp not in ("2c", "3"):
            raise ValueError(f"device {device.device} is not polled over SNMP")
        self.device = device
        self._hlapi = None  # type: Any
        self._engine = None  # type: Any
        self._target = None  # type: Any
        self._auth = None  # type: Any

    # --- set-up ------------------------------------------------------------------------

    def _auth_data(self) -> Any:
        hlapi, dev = self._hlapi, self.device
        if dev.snmp == "2c":
            return hlapi.CommunityData(dev.secret("community"), mpModel=1)
        auth_key = dev.secret("auth_password") if dev.auth_protocol != "none" else None
        priv_key = dev.secret("priv_password") if dev.priv_protocol != "none" else None
        return hlapi.UsmUserData(
            dev.user, authKey=auth_key, privKey=priv_key,
            authProtocol=_auth_protocols(hlapi)[dev.auth_protocol],
            privProtocol=_priv_protocols(hlapi)[dev.priv_protocol])

    async def _ready(self) -> None:
        if self._hlapi is None:
            self._hlapi = _hlapi()
        hlapi = self._hlapi
        if self._engine is None:
            # One engine per device: SNMPv3 users with the same name but different
            # passwords on two devices would clash inside a shared engine.
            self._engine = hlapi.SnmpEngine()
            self._auth = self._auth_data()
        if self._target is None:
            dev = self.device
            kind = hlapi.Udp6TransportTarget if ":" in dev.host else hlapi.UdpTransportTarget
            try:
                self._target = await kind.create((dev.host, dev.port), timeout=dev.timeout_s,
                                                 retries=dev.retries)
            except Exception as exc:  # noqa: BLE001 - PySnmpError: the name does not resolve
                raise SnmpError(f"cannot resolve {dev.host}: {_one_line(exc)}") from None

    def close(self) -> None:
        if self._engine is not None:
            # A socket that is already gone cannot be closed twice: nothing to do then.
            with contextlib.suppress(Exception):
                self._engine.close_dispatcher()
            self._engine = None
            self._target = None

    # --- requests ----------------------------------------------------------------------

    def _error(self, indication: Any) -> SnmpError:
        kind = type(indication).__name__
        dev = self.device
        if kind == "RequestTimedOut":
            tries = dev.retries + 1
            # Devices drop requests with a wrong community or an undecryptable v3 PDU
            # without a word: a timeout is all we learn.
            who = "community" if dev.snmp == "2c" else "priv_password or priv_protocol"
            return SnmpError(f"no SNMP answer within {dev.timeout_s:g} s ({tries} "
                             f"{'try' if tries == 1 else 'tries'}): wrong {who}, SNMP off, "
                             "or a firewall or access list drops this PC's requests")
        hints = {
            "WrongDigest": "authentication failed: wrong auth_password or auth_protocol",
            "UnknownUserName": f"the device does not know SNMPv3 user {dev.user!r}",
            "DecryptionError": "decryption failed: wrong priv_password or priv_protocol",
            "UnsupportedSecLevel": "the device does not allow this security level for the "
                                   "user (check auth_protocol and priv_protocol)",
            "AuthenticationFailure": "authentication failed",
        }
        text = hints.get(kind)
        return SnmpError(f"{text} ({_one_line(indication)})" if text else _one_line(indication))

    async def _get(self, names: Sequence[str]) -> Tuple[int, List[Tuple[Oid, Any]]]:
        hlapi = self._hlapi
        objects = [hlapi.ObjectType(hlapi.ObjectIdentity(oids.SCALARS[n])) for n in names]
        try:
            indication, status, _index, var_binds = await hlapi.get_cmd(
                self._engine, self._auth, self._target, hlapi.ContextData(), *objects,
                lookupMib=False)
        except Exception as exc:  # noqa: BLE001 - pysnmp raises PySnmpError and friends
            raise SnmpError(f"SNMP request failed: {_one_line(exc)}") from None
        if indication:
            raise self._error(indication)
        return int(status), [(tuple(vb[0]), vb[1]) for vb in var_binds]

    async def _bulk(self, start: Sequence[Oid], repetitions: int
                    ) -> Tuple[int, List[Tuple[Oid, Any]]]:
        hlapi = self._hlapi
        objects = [hlapi.ObjectType(hlapi.ObjectIdentity(".".join(map(str, oid))))
                   for oid in start]
        try:
            indication, status, _index, var_binds = await hlapi.bulk_cmd(
                self._engine, self._auth, self._target, hlapi.ContextData(), 0, repetitions,
                *objects, lookupMib=False)
        except Exception as exc:  # noqa: BLE001 - pysnmp raises PySnmpError and friends
            raise SnmpError(f"SNMP request failed: {_one_line(exc)}") from None
        if indication:
            raise self._error(indication)
        return int(status), [(tuple(vb[0]), vb[1]) for vb in var_binds]

    async def get_scalars(self) -> Dict[str, Any]:
        """sysDescr, sysName, uptimes ... in one GET; the ones the device lacks are absent."""
        names = list(oids.SCALARS)
        status, var_binds = await self._get(names)
        if status == 0:
            return _scalars(names, var_binds)
        # An SNMPv1-minded device fails the whole GET for one missing object: ask singly.
        out = {}  # type: Dict[str, Any]
        for name in names:
            status, var_binds = await self._get([name])
            if status == 0:
                out.update(_scalars([name], var_binds))
        if not out:
            raise SnmpError("the device answered but refused every system object "
                            f"(error-status {status})")
        return out

    async def walk(self, columns: Dict[str, str]) -> Dict[str, Dict[str, Any]]:
        """Walk several table columns at once with GETBULK; {column: {index: value}}."""
        roots = {name: _oid(oid) for name, oid in columns.items()}
        last = dict(roots)
        out = {name: {} for name in columns}  # type: Dict[str, Dict[str, Any]]
        active = list(columns)
        repetitions = max(1, MAX_VARBINDS // len(active))
        for _request in range(MAX_WALK_REQUESTS):
            if not active:
                break
            status, var_binds = await self._bulk([last[n] for n in active], repetitions)
            if status == TOO_BIG and repetitions > 1:
                repetitions = max(1, repetitions // 2)
                continue
            if status != 0 or not var_binds:
                break  # e.g. an SNMPv1-only corner of the device: keep what we have
            done = set()
            # Wire order: one successor per active column, then the next row, and so on.
            for i, (oid, value) in enumerate(var_binds):
                name = active[i % len(active)]
                root = roots[name]
                if name in done:
                    continue
                if oid[:len(root)] != root or oid <= last[name]:
                    done.add(name)  # past the column's end (or a non-increasing answer)
                    continue
                last[name] = oid
                decoded = plain(value)
                if decoded is None:  # endOfMibView
                    done.add(name)
                    continue
                out[name][".".join(map(str, oid[len(root):]))] = decoded
            active = [n for n in active if n not in done]
            repetitions = max(1, MAX_VARBINDS // max(1, len(active)))
        return out

    async def read(self) -> Answer:
        """One poll: the scalars, then the interface and host-resources tables."""
        await self._ready()
        scalars = await self.get_scalars()
        tables = await self.walk(oids.INTERFACE_COLUMNS)
        try:
            tables.update(await self.walk(oids.HOST_COLUMNS))
        except SnmpError as exc:  # optional: some devices stall on HOST-RESOURCES
            log.debug("%s: no host resources this poll: %s", self.device.device, exc)
        return Answer(scalars, tables)


def _scalars(names: Sequence[str], var_binds: Sequence[Tuple[Oid, Any]]) -> Dict[str, Any]:
    wanted = {_oid(oids.SCALARS[n]): n for n in names}
    out = {}  # type: Dict[str, Any]
    for oid, value in var_binds:
        name = wanted.get(oid)
        decoded = plain(value)
        if name is not None and decoded is not None:
            out[name] = decoded
    return out


def _one_line(exc: Any) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
