"""Routers and switches polled by the agent over SNMP (or only pinged), each published as
a device of its own: see docs/router-snmp.md.

    oids.py       the standard OIDs read (MIB-II, IF-MIB, HOST-RESOURCES)
    session.py    SNMP v2c/v3 requests (the only module importing pysnmp, lazily)
    poller.py     answers -> metrics and inventory data, counter rates
    publisher.py  per device: its own seq, disk queue and forwarder on the agent's link
    scheduler.py  the polling thread: ping + SNMP per device, online/offline
"""
