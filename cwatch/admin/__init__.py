"""Administration of the broker: device and service accounts (`cwatch admin`)."""
