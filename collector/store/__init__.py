"""Where accepted samples go: the time-series database and the device state store."""
