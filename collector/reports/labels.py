"""Every word the procurement report shows, in English (the catalog's source language).
Renderers show them through i18n.Lang.gettext; the Vietnamese catalog is
collector/reports/locale/vi/LC_MESSAGES/messages.po (a test checks it translates each)."""

from __future__ import annotations


def N_(text: str) -> str:
    """Marks a string for the catalog; it is translated where it is shown."""
    return text


TITLE = N_("Procurement report: aging and failing IT equipment")
SUMMARY = N_("Province summary")
COMMUNES = N_("Communes")
SITES = N_("Links and routers to upgrade")
UNFUNDED = N_("Not funded within the budget")
METHOD = N_("Method")
UNMATCHED = N_("Asset rows that matched no device")
AGE_CHART = N_("Devices by age")
COST_CHART = N_("Estimated cost per commune")
GENERATED = N_("Generated")
PERIOD = N_("Period")
PROVINCE = N_("Province")
BUDGET = N_("Budget")
NO_BUDGET = N_("no cap")
TOTAL_COST = N_("Total estimated cost")
FUNDED_COST = N_("Funded within the budget")
NOT_FUNDED = N_("Not funded")
YES = N_("yes")
NO = N_("no")
UNKNOWN = N_("unknown")
NOTHING = N_("Nothing to list.")

SETTINGS = N_("Settings")
SETTING = N_("Setting")
VALUE = N_("Value")
REFRESH_AGE = N_("Refresh age (years)")
USEFUL_LIFE = N_("Useful life (years)")
ASSETS_FILE = N_("Asset file")
ALL = N_("all")
PREPARED_BY = N_("Prepared by")
APPROVED_BY = N_("Approved by")
SIGN_HINT = N_("(signature and full name)")
MORE_DEVICES = N_("… and {count} more, see the XLSX")
# Shorter names of the sheets whose section title is too long for Excel's 31 characters.
SITES_SHEET = N_("Links and routers")
UNMATCHED_SHEET = N_("Unmatched asset rows")

# Column headings.
RANK = N_("Rank")
COMMUNE = N_("Commune")
SITE = N_("Site")
DEVICE = N_("Device")
HOSTNAME = N_("Host name")
ROLE = N_("Role")
AGE = N_("Age (years)")
BORN = N_("Purchase or BIOS date")
OS = N_("Operating system")
OS_EOS = N_("OS out of support")
WINDOWS11 = N_("Windows 11")
WINDOWS11_BLOCKERS = N_("What blocks Windows 11")
CPU = N_("CPU")
RAM = N_("RAM (GB)")
DISK = N_("Disk")
SCORE = N_("Score")
ACTION = N_("Suggested action")
COST = N_("Cost (VND)")
FUNDED = N_("Funded")
EVIDENCE = N_("Evidence")
WHY = N_("Why")
ASSET_TAG = N_("Asset tag")
LOCATION = N_("Location")
CPU_P95 = N_("CPU p95 (%)")
MEM_P95 = N_("Memory p95 (%)")
MEM_HOURS = N_("Hours with memory at 90 % or more")
SWAP = N_("Swapping (% of samples)")
DISK_FULL = N_("Fullest disk (%)")
REBOOTS = N_("Unexpected reboots")
REALLOCATED = N_("Reallocated sectors")
PENDING = N_("Pending sectors")
SMART = N_("SMART")
FINDINGS = N_("Findings")
RTT = N_("Round trip p95 (ms)")
LOSS = N_("Loss (%)")
THROUGHPUT = N_("Throughput (Mbit/s)")
ROUTER = N_("Router")
DEVICES = N_("Devices")
FAILING = N_("Failing")
AT_RISK = N_("At risk")
BEYOND_REFRESH = N_("Beyond refresh age")
BEYOND_LIFE = N_("Beyond useful life")
UNIT_PRICE = N_("Unit price (VND)")
LINE = N_("Line")
ROW = N_("Row")
REASON = N_("Reason")
AGE_BAND = N_("Age band")
COUNT = N_("Count")
PASSED = N_("passed")
FAILED = N_("FAILED")
BORN_FROM = N_("Date from")
FROM_PURCHASE = N_("purchase")
FROM_BIOS = N_("BIOS")

WINDOWS11_STATES = {
    "ready": N_("ready"),
    "in_place": N_("upgrade in place"),
    "replace": N_("must be replaced"),
    "unknown": N_("check by hand"),
    "not_windows": N_("not Windows"),
}
ACTIONS = {
    "replace the machine": N_("replace the machine"),
    "replace the HDD with an SSD": N_("replace the HDD with an SSD"),
    "replace the disk": N_("replace the disk"),
    "add RAM": N_("add RAM"),
    "replace the battery": N_("replace the battery"),
    "upgrade the operating system": N_("upgrade the operating system"),
    "replace the router": N_("replace the router"),
    "replace the switch": N_("replace the switch"),
    "upgrade the link": N_("upgrade the link"),
    "none": N_("none"),
}
ROLES = {"service-counter": N_("service counter"), "office": N_("office"),
         "server": N_("server"), "router": N_("router"), "switch": N_("switch"),
         "spare": N_("spare")}
FINDING_KINDS = {
    "smart_failed": N_("SMART failed"), "disk_failing": N_("failing disk"),
    "nvme_worn": N_("worn SSD"), "overheating": N_("overheating"),
    "memory_pressure": N_("memory pressure"), "disk_full": N_("disk full"),
    "unexpected_reboots": N_("unexpected reboots"), "cpu_saturated": N_("CPU saturated"),
    "battery_worn": N_("worn battery"), "os_end_of_support": N_("OS out of support"),
    "windows11_incapable": N_("cannot run Windows 11"), "device_silent": N_("silent"),
    "slow_link": N_("slow link"), "local_network": N_("local network fault"),
    "site_unreachable": N_("site unreachable"), "dns_slow": N_("slow DNS"),
    "disk_filling": N_("disk filling up"),
    "interface_errors": N_("interface errors"), "interface_discards": N_("dropped packets"),
    "wan_saturated": N_("WAN link full"), "lan_loss": N_("packet loss on the LAN"),
}
BLOCKERS = {
    "no TPM 2.0": N_("no TPM 2.0"),
    "legacy BIOS, no UEFI": N_("legacy BIOS, no UEFI"),
    "Secure Boot off or absent": N_("Secure Boot off or absent"),
    "under 4 GB RAM": N_("under 4 GB RAM"),
    "CPU older than Windows 11 supports": N_("CPU older than Windows 11 supports"),
}
AGE_BAND_NAMES = (N_("0-3 years"), N_("4-5 years"), N_("6-8 years"), N_("9 years or more"),
                  N_("unknown age"))
WEIGHTS = {"critical": N_("points per critical finding"),
           "warning": N_("points per warning finding"),
           "info": N_("points per info finding"),
           "risk_max": N_("failure risk, at most"),
           "shortfall_max": N_("performance shortfall, at most"),
           "per_year": N_("points per year of age"),
           "end_of_support": N_("points for an OS out of support"),
           "age_max": N_("age, at most")}
REASON_PARTS = {"risk": N_("failure risk"), "shortfall": N_("performance shortfall"),
                "age": N_("age")}

# The method appendix, one paragraph each; {placeholders} are filled by the renderer.
METHOD_TEXT = (
    N_("Each device gets a score: (failure risk + performance shortfall + age) x role "
       "weight. Failure risk counts the active findings about its hardware (critical "
       "{critical} points, warning {warning}, at most {risk_max}). Performance shortfall "
       "counts how often the CPU, memory or disk limited its user over the period (at most "
       "{shortfall_max}). Age adds {per_year} points a year since purchase, else since the "
       "BIOS date, and {end_of_support} if the operating system is out of support (at most "
       "{age_max}). A service-counter PC, which serves citizens, weighs more than a spare."),
    N_("The suggested action is the cheapest one that fixes what was measured: add RAM or "
       "fit an SSD before replacing a whole PC; replace the PC when it is old and failing or "
       "too slow, or when it runs Windows 10 and cannot run Windows 11."),
    N_("Windows 11 needs TPM 2.0, UEFI with Secure Boot, 4 GB of RAM and an Intel 8th "
       "generation, AMD Ryzen 2000 or newer CPU. A PC that misses only settings (UEFI, Secure "
       "Boot, a firmware TPM) or RAM can be upgraded in place; an older CPU means replacing "
       "the PC."),
    N_("Costs are the unit prices below times the devices needing each action. With a "
       "budget, actions are funded in priority order until the next one does not fit; the "
       "rest are listed as not funded."),
    N_("Refresh age: {refresh} years. Useful life under the province's asset rules: "
       "{useful_life} years. Measurements from {start} to {end}."),
)
