"""MQTT publisher: broker, TLS and credentials, what is published and how often, store-and-forward."""
from firmware.config.schema import Bool, Duration, Enum, Int, ListOf, Option, Section, Str

HOST = Str(253, r"[A-Za-z0-9._:-]{1,253}", "a host name or IP address")
TOPIC_PART = Str(128, r"[^#+/\x00]+(/[^#+/\x00]+)*", "MQTT topic levels without wildcards (a/b/c)")
POINT = Str(64, r"[a-z][a-z0-9_]*", "a point name (docs/modbus.md lists them)")

SECTIONS = [
    Section("mqtt", [
        Option("enabled", Bool(), False, "Run the MQTT publisher service."),
        Option("host", HOST, "127.0.0.1", "Broker host name or address."),
        Option("port", Int(1, 65535), 1883, "Broker port (8883 is the usual TLS port)."),
        Option("client_id", Str(64), "",
               "MQTT client id; empty: `openmeter-<serial_number>`. The session is persistent, so the id must "
               "be unique per meter."),
        Option("username", Str(255), "", "User name (empty: none)."),
        Option("password", Str(255), "", "Password (sent only with a user name; use TLS).", secret=True),
        Option("tls", Bool(), False, "Connect with TLS (server certificate and host name verified)."),
        Option("ca_file", Str(255), "", "CA certificates (PEM) for the broker; empty: the system's.",
               local=True),
        Option("cert_file", Str(255), "", "Client certificate (PEM) for mutual TLS; empty: none.",
               local=True),
        Option("key_file", Str(255), "", "Client private key (PEM) for mutual TLS.", local=True),
        Option("keepalive", Duration(5, 3600), 30.0, "MQTT keep-alive.", "s"),
        Option("qos", Int(1, 2), 2,
               "QoS of published data: 2 (exactly once through a broker restart with persistence) or 1 (at "
               "least once; subscribers drop repeats by `seq`)."),
        Option("topic_prefix", TOPIC_PART, "openmeter", "First topic levels (see docs/fleet.md)."),
        Option("payload", Enum("json", "sparkplug"), "json",
               "JSON objects on <prefix>/<meter>/<kind>, or Sparkplug-B-style topics and metric lists "
               "(spBv1.0/<prefix>/DDATA/<meter>/<kind>) with JSON bodies."),
        Option("readings", Bool(), True, "Publish the 1-s readings."),
        Option("readings_interval", Duration(1, 3600), 1.0, "Interval between readings messages.", "s"),
        Option("readings_points", ListOf(POINT, 1, 256),
               ("v_an", "v_bn", "v_cn", "i_a", "i_b", "i_c", "p_total", "q_total", "s_total", "pf_total",
                "frequency"),
               "Points in each readings message."),
        Option("energy", Bool(), True, "Publish the energy registers."),
        Option("energy_interval", Duration(1, 86400), 60.0, "Interval between energy messages.", "s"),
        Option("intervals", Bool(), True, "Publish each load-profile interval record once it closes."),
        Option("events", Bool(), True, "Publish load-profile events and time events."),
        Option("max_inflight", Int(1, 1000), 100, "Messages sent and not yet acknowledged by the broker."),
        Option("store_depth", Int(100, 10000000), 200000,
               "Messages kept in the store-and-forward queue (data_dir/mqtt.db) while the broker is away; "
               "beyond it the oldest are dropped and counted."),
    ], "MQTT publishing to a broker for fleets (docs/fleet.md)."),
]
