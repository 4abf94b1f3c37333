"""A private net-snmp snmpd on a free UDP port of 127.0.0.1, for the SNMP poller's tests.

It answers SNMPv2c (one community, from 127.0.0.1 only) and SNMPv3 (one authPriv user,
SHA + AES), with the sysName and sysDescr given, and serves this machine's real interfaces
and memory. Two columns come from `pass` scripts that read files instead:

* ifInErrors (1.3.6.1.2.1.2.2.1.14), so a test can make one interface's errors rise
  (`add_errors`). `pass` takes over the whole subtree it is given, so the script serves the
  column for every interface (0 for the others).
* hrProcessorLoad (1.3.6.1.2.1.25.3.3.1.2): net-snmp reports it only after a minute of CPU
  history, too long for a test; two processors at CPU_LOADS instead (its own hr_proc
  module is left out, or the two would clash).

Never touches a system snmpd: no config but ours is read (-C), persistent state goes to
the temp folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from cwatch.procs import end_process, find_binary

IF_IN_ERRORS = ".1.3.6.1.2.1.2.2.1.14"
HR_PROCESSOR_LOAD = ".1.3.6.1.2.1.25.3.3.1.2"
CPU_LOADS = {196608: 10, 196609: 30}  # hrDeviceIndex -> percent
LOOPBACK_TYPE = "772"  # ARPHRD_LOOPBACK in /sys/class/net/*/type

# snmpd `pass` protocol: called with -g OID (get) or -n OID (get-next); prints the OID,
# the type and the value, or nothing. Serves one column: rows INDEXES, values from the
# file named after the row in DIR (0 when there is none).
PASS_SCRIPT = """#!/bin/sh
BASE={base}
INDEXES="{indexes}"
value() {{ cat "{folder}/$1" 2>/dev/null || echo 0; }}
req="$2"
rest="${{req#"$BASE".}}"
[ "$rest" = "$req" ] && rest=""
idx="${{rest%%.*}}"
case "$1" in
  -g)
    [ -n "$rest" ] && [ "$rest" = "$idx" ] || exit 0
    for i in $INDEXES; do
      if [ "$i" = "$idx" ]; then echo "$BASE.$i"; echo {kind}; value "$i"; exit 0; fi
    done ;;
  -n)
    after="${{idx:-0}}"
    for i in $INDEXES; do
      if [ "$i" -gt "$after" ]; then echo "$BASE.$i"; echo {kind}; value "$i"; exit 0; fi
    done ;;
esac
"""


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def machine_interfaces(sys_class_net: Path = Path("/sys/class/net")) -> list[tuple[int, str]]:
    """(ifindex, name) of this machine's interfaces but the loopback, by ifindex; on Linux
    snmpd's ifIndex is the kernel's ifindex and its ifName the interface name."""
    out = []
    for path in sys_class_net.iterdir():
        try:
            index = int((path / "ifindex").read_text().strip())
            kind = (path / "type").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind != LOOPBACK_TYPE:
            out.append((index, path.name))
    return sorted(out)


def all_ifindexes(sys_class_net: Path = Path("/sys/class/net")) -> list[int]:
    out = []
    for path in sys_class_net.iterdir():
        try:
            out.append(int((path / "ifindex").read_text().strip()))
        except (OSError, ValueError):
            continue
    return sorted(out)


class Snmpd:
    """snmpd -f on udp:127.0.0.1:<free port> with a throw-away config."""

    def __init__(self, workdir: Path, *, community: str = "cw-test-ro",
                 user: str = "cwatch", auth_password: str = "auth-secret-1",
                 priv_password: str = "priv-secret-1", sys_name: str = "test-router",
                 sys_descr: str = "Linux test-router 6.1.0 #1 SMP commune-watch test") -> None:
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = free_udp_port()
        self.community = community
        self.user, self.auth_password, self.priv_password = user, auth_password, priv_password
        self.sys_name, self.sys_descr = sys_name, sys_descr
        interfaces = machine_interfaces()
        if not interfaces:
            raise RuntimeError("no network interface but the loopback: nothing to count "
                               "errors on")
        # The interface whose ifInErrors the test controls.
        self.error_ifindex, self.error_interface = interfaces[0]
        self.counter = workdir / "if_in_errors" / str(self.error_ifindex)
        self.binary = find_binary("snmpd", "snmpd", ["/usr/sbin", "/usr/local/sbin"])
        self.proc = None  # type: subprocess.Popen | None
        self.log = workdir / "snmpd.log"

    def start(self, timeout_s: float = 10.0) -> Snmpd:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "persist").mkdir(exist_ok=True)
        (self.workdir / "mibs").mkdir(exist_ok=True)
        passes = []
        for name, base, kind, rows in (
                ("if_in_errors", IF_IN_ERRORS, "counter", {self.error_ifindex: 0}),
                ("hr_processor_load", HR_PROCESSOR_LOAD, "integer", CPU_LOADS)):
            folder = self.workdir / name
            folder.mkdir(exist_ok=True)
            for row, value in rows.items():
                (folder / str(row)).write_text(f"{value}\n")
            indexes = all_ifindexes() if name == "if_in_errors" else sorted(rows)
            script = self.workdir / f"{name}.sh"
            script.write_text(PASS_SCRIPT.format(base=base, indexes=" ".join(map(str, indexes)),
                                                 folder=folder, kind=kind))
            passes.append(f"pass {base} /bin/sh {script}\n")
        conf = self.workdir / "snmpd.conf"
        conf.write_text(
            f"sysName {self.sys_name}\n"
            f"sysDescr {self.sys_descr}\n"
            "sysLocation commune-watch test\n"
            "sysContact nobody\n"
            f"rocommunity {self.community} 127.0.0.1\n"
            f'createUser {self.user} SHA "{self.auth_password}" AES "{self.priv_password}"\n'
            f"rouser {self.user} priv\n" + "".join(passes))
        env = dict(os.environ)
        # Our own state folder, and no MIB files: snmpd needs none to serve numeric OIDs.
        env.update(SNMP_PERSISTENT_DIR=str(self.workdir / "persist"),
                   MIBDIRS=str(self.workdir / "mibs"), MIBS="")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                # -I: no SMUX (it would listen on TCP port 199), and no hr_proc module,
                # so that the pass script can serve hrProcessorLoad.
                [self.binary, "-f", "-Lo", "-C", "-c", str(conf), "-I", "-smux,hr_proc",
                 "-p", str(self.workdir / "snmpd.pid"), f"udp:{self.host}:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout_s
        while b"NET-SNMP version" not in self.log.read_bytes():  # logged once listening
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("snmpd did not start: "
                                   + self.log.read_text(errors="replace")[-500:])
            time.sleep(0.05)
        return self

    def add_errors(self, count: int) -> int:
        """Raise the test interface's ifInErrors by `count`; returns the new value."""
        value = int(self.counter.read_text().strip() or 0) + count
        tmp = self.counter.with_suffix(".tmp")
        tmp.write_text(f"{value}\n")
        os.replace(tmp, self.counter)
        return value

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, grace_s=5)
            self.proc = None
