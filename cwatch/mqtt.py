"""The [broker] config section and a paho-mqtt 2.x client built from it.

Shared by agent and collector; Python 3.8 compatible. paho is imported only
when a client is made, so `--help` and config checks work without it.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from typing import TYPE_CHECKING, Optional, Tuple

from cwatch.config import BrokerURL

if TYPE_CHECKING:  # pragma: no cover
    import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)


class _CleanDisconnectFilter(logging.Filter):
    """paho 2.2 logs an ERROR from its loop after a wanted disconnect; it is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Client is not connected")
                    and message.endswith("MQTT_CS_DISCONNECTED"))


paho_log = logging.getLogger("cwatch.paho")
paho_log.addFilter(_CleanDisconnectFilter())


@dataclasses.dataclass(frozen=True)
class BrokerConfig:
    url: str = "mqtt://127.0.0.1:1883"
    username: Optional[str] = None
    password: Optional[str] = None
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    # "5" or "3.1.1"; MQTT 5 gives session expiry and shared subscriptions.
    protocol: str = "5"
    keepalive_s: int = 60
    # Reconnect backoff doubles from a random 1-5 s up to this.
    reconnect_max_s: int = 120

    def __post_init__(self) -> None:
        parsed = BrokerURL.parse(self.url)  # raises ValueError with the URL named
        if self.protocol not in ("5", "3.1.1"):
            raise ValueError(f"protocol must be \"5\" or \"3.1.1\", got {self.protocol!r}")
        if not 5 <= self.keepalive_s <= 3600:
            raise ValueError("keepalive_s must be between 5 and 3600")
        if not 1 <= self.reconnect_max_s <= 3600:
            raise ValueError("reconnect_max_s must be between 1 and 3600")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        object.__setattr__(self, "_parsed", parsed)

    @property
    def address(self) -> BrokerURL:
        return self._parsed  # type: ignore[attr-defined,no-any-return]

    def credentials(self) -> Tuple[Optional[str], Optional[str]]:
        """Explicit keys (and their environment overrides) win over the URL's userinfo."""
        return (self.username or self.address.username, self.password or self.address.password)


def make_client(broker: BrokerConfig, client_id: str, *, persistent_session: bool,
                will: Optional[Tuple[str, bytes]] = None) -> mqtt.Client:
    """A configured, not yet connected client (TLS, credentials, Last Will, logger)."""
    import paho.mqtt.client as mqtt

    v5 = broker.protocol == "5"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent_session,
    )
    client.enable_logger(paho_log)
    user, password = broker.credentials()
    if user:
        client.username_pw_set(user, password)
    if broker.address.tls or broker.ca_file:
        context = ssl.create_default_context(cafile=broker.ca_file)
        if broker.cert_file:
            context.load_cert_chain(broker.cert_file, broker.key_file)
        client.tls_set_context(context)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=broker.reconnect_max_s)
    return client


def connect_async(client: mqtt.Client, broker: BrokerConfig, *, persistent_session: bool,
                  session_expiry_s: int = 7 * 86400,
                  receive_maximum: Optional[int] = None) -> None:
    """Start connecting in paho's loop; a persistent session outlives restarts on both protocols.

    receive_maximum (MQTT 5): how many QoS 1 messages the broker may send before we
    acknowledge them; MQTT 3.1.1 has no such limit (the broker's max_inflight_messages).
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    if broker.protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        # MQTT 5 drops a session at disconnect unless it is given an expiry.
        props.SessionExpiryInterval = session_expiry_s if persistent_session else 0
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        client.connect_async(broker.address.host, broker.address.port,
                             keepalive=broker.keepalive_s,
                             clean_start=not persistent_session, properties=props)
    else:  # MQTT 3.1.1: clean_session was fixed when the client was made
        client.connect_async(broker.address.host, broker.address.port,
                             keepalive=broker.keepalive_s,
                             clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY)
