"""The web interface: HTTPS modes, ports, certificate, sessions and the limits every client is held to (SPEC §8;
ION7400 firmware 3.0 "what's new": HTTPS only, no plain HTTP by default)."""
from firmware.config.schema import Duration, Enum, Int, IPAddress, Option, Section, Str

# "https-redirect": HTTPS, and a plain-HTTP port that only answers with a redirect to it (the ION default).
# "https-only": no plain-HTTP port at all. "disabled": the web service is not started.
WEB_MODES = ("https-redirect", "https-only", "disabled")

SECTIONS = [
    Section("web", [
        Option("mode", Enum(*WEB_MODES), "https-redirect",
               "https-redirect: the pages and the JSON API over HTTPS, and plain HTTP that only redirects to "
               "HTTPS; https-only: no plain-HTTP port; disabled: no web service."),
        Option("bind_address", IPAddress(), "0.0.0.0",
               "Address both ports listen on (0.0.0.0: every interface; 127.0.0.1: this host only)."),
        Option("https_port", Int(1, 65535), 443, "HTTPS port; `make run` uses 8443."),
        Option("http_port", Int(1, 65535), 80,
               "Plain-HTTP port of the https-redirect mode (answers every request with a redirect to HTTPS); "
               "`make run` uses 8080."),
        Option("cert_dir", Str(255), "web",
               "Directory of the server certificate, relative to [meter] data_dir unless absolute: the self-signed "
               "certificate made on first start and an uploaded one, which is used while it is there.", local=True),
        Option("max_body", Int(1024, 1 << 20), 64 * 1024,
               "Largest JSON request body; a larger one is refused with 413 before it is read.", "bytes"),
        Option("max_upload", Int(1 << 20, 1 << 31), 512 * 1024 * 1024,
               "Largest firmware image accepted by the upload; the upload stops and is deleted past it.", "bytes"),
        Option("body_timeout", Duration(1, 3600), 600.0,
               "A request body (an upload included) not complete within this time is abandoned.", "s"),
        Option("rate", Int(1, 10000), 50,
               "Requests per second one client address may make on average; more are answered 429.", "1/s"),
        Option("burst", Int(1, 10000), 200, "Requests one client address may make at once above the rate."),
        Option("login_rate", Int(1, 1000), 10,
               "Login attempts per minute from one client address; more are answered 429 (the users' own lockout "
               "after failed logins is the security settings').", "1/min"),
        Option("max_connections", Int(4, 1024), 64,
               "Connections open at once; a connection past this is closed as soon as it is accepted."),
        Option("max_connections_per_address", Int(1, 256), 16,
               "Connections open at once from one client address."),
        Option("max_streams", Int(1, 64), 8, "Live-reading streams (the pages' live values) open at once."),
        Option("header_timeout", Duration(1, 120), 10.0,
               "A connection that has not sent a whole request head within this time is closed.", "s"),
    ], "The HTTPS web interface and JSON API (docs/web.md; the API reference is docs/web-api.md)."),
]
