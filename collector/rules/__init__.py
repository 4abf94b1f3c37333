"""Health and link rules: findings about failing equipment and slow links.

    default.toml   the rules as data (thresholds, `for`, hysteresis, severity, sources)
    spec.py        rule file -> Rule objects (errors name the rule and the key)
    quantities.py  what a rule can measure in a sample (per item: a disk, a sensor ...)
    engine.py      samples in sample-time order -> pending -> firing -> resolved
    links.py       probe windows per site, and where a link fault is: device's network,
                   the commune's link, or the provincial portal
"""
