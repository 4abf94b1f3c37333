"""The SNMP objects the poller reads, by name: standard MIB-II, IF-MIB and HOST-RESOURCES
OIDs only, so no MIB files are needed on the PC and any router or switch answers them."""

from __future__ import annotations

from typing import Dict

# Scalars, read with one GET per poll (SNMPv2-MIB, HOST-RESOURCES-MIB).
SCALARS: Dict[str, str] = {
    "sysDescr": "1.3.6.1.2.1.1.1.0",
    "sysObjectID": "1.3.6.1.2.1.1.2.0",
    "sysUpTime": "1.3.6.1.2.1.1.3.0",  # the SNMP daemon's uptime, not the device's
    "sysName": "1.3.6.1.2.1.1.5.0",
    "hrSystemUptime": "1.3.6.1.2.1.25.1.1.0",  # the device's (OS) uptime: preferred
}

# Interface table columns, walked together with GETBULK (IF-MIB ifTable and ifXTable).
INTERFACE_COLUMNS: Dict[str, str] = {
    "ifDescr": "1.3.6.1.2.1.2.2.1.2",
    "ifType": "1.3.6.1.2.1.2.2.1.3",
    "ifSpeed": "1.3.6.1.2.1.2.2.1.5",  # bit/s, saturates at 4,294,967,295
    "ifPhysAddress": "1.3.6.1.2.1.2.2.1.6",
    "ifOperStatus": "1.3.6.1.2.1.2.2.1.8",
    "ifInOctets": "1.3.6.1.2.1.2.2.1.10",  # 32-bit: wraps in 34 s at 1 Gbit/s
    "ifInDiscards": "1.3.6.1.2.1.2.2.1.13",
    "ifInErrors": "1.3.6.1.2.1.2.2.1.14",
    "ifOutOctets": "1.3.6.1.2.1.2.2.1.16",
    "ifOutDiscards": "1.3.6.1.2.1.2.2.1.19",
    "ifOutErrors": "1.3.6.1.2.1.2.2.1.20",
    "ifName": "1.3.6.1.2.1.31.1.1.1.1",
    "ifHCInOctets": "1.3.6.1.2.1.31.1.1.1.6",  # 64-bit, when the device has ifXTable
    "ifHCOutOctets": "1.3.6.1.2.1.31.1.1.1.10",
    "ifHighSpeed": "1.3.6.1.2.1.31.1.1.1.15",  # Mbit/s
}

# HOST-RESOURCES-MIB columns: CPU load per processor, and storage (RAM among it).
HOST_COLUMNS: Dict[str, str] = {
    "hrProcessorLoad": "1.3.6.1.2.1.25.3.3.1.2",  # percent, averaged over the last minute
    "hrStorageType": "1.3.6.1.2.1.25.2.3.1.2",
    "hrStorageAllocationUnits": "1.3.6.1.2.1.25.2.3.1.4",
    "hrStorageSize": "1.3.6.1.2.1.25.2.3.1.5",
    "hrStorageUsed": "1.3.6.1.2.1.25.2.3.1.6",
}

HR_STORAGE_RAM = "1.3.6.1.2.1.25.2.1.2"  # hrStorageType of physical memory
IF_TYPE_SOFTWARE_LOOPBACK = 24

# ifOperStatus: up(1) -> True; down(2), testing(3), dormant(5), lowerLayerDown(7) -> False;
# unknown(4) and notPresent(6) -> None (the device cannot tell).
OPER_STATUS_UP = {1: True, 2: False, 3: False, 5: False, 7: False}

# sysObjectID's enterprise number (1.3.6.1.4.1.N...) -> maker, for the inventory.
ENTERPRISES: Dict[int, str] = {
    9: "Cisco",
    11: "HP",
    171: "D-Link",
    2011: "Huawei",
    2636: "Juniper",
    3902: "ZTE",
    4413: "Broadcom",
    4526: "Netgear",
    5624: "Enterasys",
    6486: "Alcatel-Lucent",
    11863: "TP-Link",
    12356: "Fortinet",
    14823: "Aruba",
    14988: "MikroTik",
    25053: "Ruckus",
    25506: "H3C",
    41112: "Ubiquiti",
}
ENTERPRISES_PREFIX = "1.3.6.1.4.1."
