"""Fleet simulator: virtual commune PCs, servers and routers that publish protocol-v1
envelopes through a real broker, exactly as agents do, with injected faults and a
ground-truth file saying what should be flagged.

    scenario.py  the scenario file (fleet shape, faults) -> Scenario
    fleet.py     Scenario + seed -> sites and devices (hardware, role, faults) + truth
    model.py     one device's data at a sample time (health, faults, link quality)
    runner.py    the clock (sample time from --start at --speed, never past now) and
                 publishing over a pool of MQTT connections, backlog batches after outages
"""
