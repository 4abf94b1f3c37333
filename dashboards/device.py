"""Device: one PC, server or router. Is it healthy, what is it short of, what is it?
CPU, memory, disks and their I/O, temperatures, SMART counters, reboots, network,
the agent's own queue, its inventory and findings."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import stat, table, timeseries

from dashboards.common import (
    BAD,
    GOOD,
    NEUTRAL,
    ONLINE,
    PROM,
    VM,
    device_variable,
    higher_is_worse,
    merge_table,
    new_dashboard,
    query,
    site_variable,
    thresholds,
    value_text,
)
from dashboards.findings import findings_table

DEVICE = 'site="$site", device="$device"'
SMART_COUNTERS = ("reallocated_sectors", "pending_sectors", "offline_uncorrectable",
                  "reported_uncorrectable", "command_timeouts", "nvme_media_errors")


def _stat(title: str, expr: str, unit: str, steps: board.ThresholdsConfig, description: str,
          *, source=VM, span: int = 4) -> stat.Panel:
    return (stat.Panel().title(title).description(description).datasource(source)
            .with_target(query(expr, source=source, instant=True)).unit(unit)
            .thresholds(steps).span(span).height(4))


def _graph(title: str, targets: list[tuple[str, str]], unit: str,
           steps: board.ThresholdsConfig, description: str, *, span: int = 12,
           max_value: float | None = None) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(VM)
             .unit(unit).min(0).thresholds(steps).span(span).height(8))
    for index, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, ref="ABCDEFGH"[index]))
    if max_value is not None:
        panel = panel.max(max_value)
    return panel


def _now_row(dash: board.Dashboard) -> board.Dashboard:
    return (dash.with_row(board.Row("$device now"))
            .with_panel(_stat("Status", f"last_over_time(cwatch_status_online{{{DEVICE}}}[30d])",
                              "none", NEUTRAL, "The agent's last word: online, or offline "
                              "(a clean stop or its Last Will).").mappings(ONLINE))
            .with_panel(_stat("Up for", f"last_over_time(cwatch_host_uptime_s{{{DEVICE}}}[1h])",
                              "s", NEUTRAL, "Time since the last boot."))
            .with_panel(_stat("Reboots in range",
                              f"changes(cwatch_host_boot_ts{{{DEVICE}}}[$__range])",
                              "none", higher_is_worse(2, 5), "Boots within the dashboard's "
                              "time range. Many without a clean shutdown: power or hardware."))
            .with_panel(_stat("Active findings", "count(cwatch_finding_active"
                              f"{{{DEVICE}}}) or vector(0)", "none", higher_is_worse(1, 2),
                              "Findings of the rules about this device, now.", source=PROM))
            .with_panel(_stat("Memory", f"last_over_time(cwatch_inventory_ram_bytes"
                              f"{{{DEVICE}}}[25h])", "bytes", thresholds(
                                  (None, "red"), (4 << 30, "orange"), (8 << 30, "green")),
                              "Installed RAM. Windows 10/11 need 8 GB to be comfortable."))
            .with_panel(_stat("Age", f"(time() - last_over_time(cwatch_inventory_bios_date_ts"
                              f"{{{DEVICE}}}[25h])) / 31557600", "y", higher_is_worse(6, 10),
                              "Years since the BIOS date: about the machine's age.")
                        .decimals(1)))


def _inventory_table() -> table.Panel:
    rename = {"hostname": "Host name", "os_name": "OS", "os_version": "Version",
              "os_build": "Build", "os_arch": "Arch", "cpu_model": "CPU",
              "system_manufacturer": "Maker", "system_model": "Model", "bios_date": "BIOS date",
              "role": "Role", "asset_tag": "Asset tag", "location": "Location",
              "agent_version": "Agent"}
    return (table.Panel().title("Inventory").description(
        "What the agent last reported about the hardware and software (daily).")
        .datasource(VM).with_target(query(
            f"last_over_time(cwatch_inventory_info{{{DEVICE}}}[25h])", table=True))
        .transformations(merge_table(rename, hide=("site", "device", "Value")))
        .unit("none").thresholds(NEUTRAL).span(24).height(4))


def _health_rows(dash: board.Dashboard) -> board.Dashboard:
    dash = (dash.with_row(board.Row("CPU and memory"))
            .with_panel(_graph("CPU", [
                (f"cwatch_host_cpu_percent{{{DEVICE}}}", "all cores"),
                (f"cwatch_host_cpu_max_core_percent{{{DEVICE}}}", "busiest core")],
                "percent", higher_is_worse(80, 95), "Busy most of the working day: the "
                "machine is too slow for its work.", max_value=100))
            .with_panel(_graph("Memory and swap", [
                (f"cwatch_host_mem_used_percent{{{DEVICE}}}", "memory used"),
                (f"cwatch_host_swap_used_percent{{{DEVICE}}}", "swap used")],
                "percent", higher_is_worse(85, 95), "Memory near full and swap in use: "
                "add RAM.", max_value=100))
            .with_panel(_graph("Swapping in", [
                (f"cwatch_host_swap_in_bytes_per_s{{{DEVICE}}}", "swap in")],
                "Bps", higher_is_worse(100_000, 1_000_000),
                "Memory read back from disk: each byte is a wait for the user.", span=8))
            .with_panel(_graph("Processes", [
                (f"cwatch_host_process_count{{{DEVICE}}}", "processes")], "none", NEUTRAL,
                "Processes running: a sudden rise is often a runaway program.", span=8))
            .with_panel(_graph("Temperatures", [
                (f"cwatch_temp_c{{{DEVICE}}}", "{{sensor}} {{label}}")], "celsius",
                higher_is_worse(80, 90), "Sensor readings. Sustained 90 °C and more: "
                "clean the fans, renew the thermal paste.", span=8)))
    dash = (dash.with_row(board.Row("Disks"))
            .with_panel(_graph("Disk space used", [
                (f"cwatch_disk_used_percent{{{DEVICE}}}", "{{mount}}")], "percent",
                higher_is_worse(85, 95), "Per partition.", span=8, max_value=100))
            .with_panel(_graph("Disk throughput", [
                (f"cwatch_diskio_read_bytes_per_s{{{DEVICE}}}", "{{disk}} read"),
                (f"cwatch_diskio_write_bytes_per_s{{{DEVICE}}}", "{{disk}} write")], "Bps",
                NEUTRAL, "Bytes read and written per second.", span=8))
            .with_panel(_graph("Disk busy", [
                (f"cwatch_diskio_busy_percent{{{DEVICE}}}", "{{disk}}")], "percent",
                higher_is_worse(60, 90), "Share of time the disk was busy. An old hard disk "
                "near 100 % is why the PC feels slow: an SSD fixes it.", span=8,
                max_value=100))
            .with_panel(_graph("SMART error counters", [
                ("{__name__=~\"cwatch_smart_(" + "|".join(SMART_COUNTERS) + ")\", "
                 f"{DEVICE}}}", "{{disk}} {{__name__}}")], "none", higher_is_worse(1, 50),
                "Reallocated, pending and uncorrectable sectors, command timeouts, NVMe "
                "media errors. Any rise: back up and replace the disk.", span=12))
            .with_panel(_graph("Disk temperature", [
                (f"cwatch_smart_temperature_c{{{DEVICE}}}", "{{disk}}")], "celsius",
                higher_is_worse(50, 60), "The drive's own temperature. Hard disks age fast "
                "above 50 °C.", span=8))
            .with_panel(_stat("SMART verdict", f"cwatch_smart_passed{{{DEVICE}}}", "none",
                              thresholds((None, "red"), (1, "green")), "Each disk's own "
                              "overall assessment. FAILED: replace it now.", span=4)
                        .mappings(value_text({"1": ("PASSED", GOOD), "0": ("FAILED", BAD)}))))
    return (dash.with_row(board.Row("Network and agent"))
            .with_panel(_graph("Network traffic", [
                (f"cwatch_net_rx_bytes_per_s{{{DEVICE}}}", "{{iface}} in"),
                (f"cwatch_net_tx_bytes_per_s{{{DEVICE}}}", "{{iface}} out")], "Bps", NEUTRAL,
                "Per interface.", span=8))
            .with_panel(_graph("Network errors", [
                (f"cwatch_net_rx_errors_per_s{{{DEVICE}}} + "
                 f"cwatch_net_tx_errors_per_s{{{DEVICE}}}", "{{iface}}")], "none",
                higher_is_worse(0.1, 1), "Errors per second: a bad cable or port.", span=8))
            .with_panel(_graph("Agent queue", [
                (f"cwatch_agent_queue_size{{{DEVICE}}}", "waiting messages")], "none",
                higher_is_worse(10, 1000), "Messages the agent keeps on disk while the "
                "link is down; they are sent later with their own times.", span=8))
            # Routers and switches (the OpenWrt agent, SNMP polling): empty for most PCs.
            .with_panel(_graph("Link use", [
                (f"100 * 8 * cwatch_net_rx_bytes_per_s{{{DEVICE}}} / "
                 f"cwatch_net_speed_bps{{{DEVICE}}}", "{{iface}} in"),
                (f"100 * 8 * cwatch_net_tx_bytes_per_s{{{DEVICE}}} / "
                 f"cwatch_net_speed_bps{{{DEVICE}}}", "{{iface}} out")], "percent",
                higher_is_worse(70, 90), "Traffic against the link's speed (for a WAN port, "
                "the provider's plan when the agent was told it). Above 90 % for long: "
                "the commune needs a faster line.", span=8))
            .with_panel(_graph("Dropped packets", [
                (f"cwatch_net_rx_drops_per_s{{{DEVICE}}} + "
                 f"cwatch_net_tx_drops_per_s{{{DEVICE}}}", "{{iface}}")], "none",
                higher_is_worse(5, 20), "Packets dropped or discarded per second: a router "
                "or switch that cannot keep up, or a network loop.", span=8))
            .with_panel(_stat("Links up", f"cwatch_net_up{{{DEVICE}}}", "none",
                              thresholds((None, "red"), (1, "green")), "Each interface's "
                              "state. A router's WAN port down: the commune is cut off.",
                              span=4)
                        .mappings(value_text({"1": ("UP", GOOD), "0": ("DOWN", BAD)})))
            .with_panel(_graph("Tracked connections", [
                (f"cwatch_host_conntrack_count{{{DEVICE}}}", "in use"),
                (f"cwatch_host_conntrack_max{{{DEVICE}}}", "limit")], "none", NEUTRAL,
                "Connections a router is tracking (NAT). At the limit, new connections "
                "fail and the internet seems down.", span=4)))


def build() -> board.Dashboard:
    dash = (new_dashboard("device", "Device",
                          "One PC, server or router: health, hardware, findings.", "now-24h")
            .with_variable(site_variable()).with_variable(device_variable()))
    dash = _now_row(dash).with_panel(_inventory_table())
    dash = _health_rows(dash)
    return (dash.with_row(board.Row("Findings"))
            .with_panel(findings_table("Active findings of $device", DEVICE)))
