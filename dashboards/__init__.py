"""Grafana dashboards as code and their provisioning (issue 8)."""
