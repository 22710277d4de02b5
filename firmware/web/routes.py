"""The JSON API's route table: every endpoint the meter serves under /api, in the order docs/web-api.md lists them.

Each endpoint names the operation the security core's authorization point decides on
(``firmware.security.authorize.OPERATIONS``: its privilege, and whether the revenue lock refuses it); handlers of
``LOGGED_IN`` endpoints ask for the operation of what they are given (which reset, which section).
"""
from __future__ import annotations

from firmware.recorder.pqdif.export import FORMATS as EXPORT_FORMATS
from firmware.recorder.pqdif.export import MAX_CAPTURES as EXPORT_MAX_CAPTURES
from firmware.recorder.pqdif.export import PARTS as EXPORT_PARTS
from firmware.recorder.store import AGGREGATE_KINDS
from firmware.recorder.trending import TARGETS as TREND_TARGETS
from metrology.reports.trend import INTERVALS as TREND_INTERVALS
from firmware.web import actions, alarms, data, pq, session, setup
from firmware.web.api import LOGGED_IN, Endpoint, Param
from firmware.web.readings import PHASOR_CHANNELS

READ = "read"
WEB_FILES = "web_files"          # the certificate is one of the web server's files (refused while revenue-locked)
MAX_CHANGES = 64                 # options one configuration write may change

LAST_TIME_S = 7258118400        # 2200-01-01 in seconds since 1970: later times are typing errors
_SINCE = Param("since", "number", "from this time (seconds since 1970, UTC), inclusive", minimum=0,
               maximum=LAST_TIME_S)
_UNTIL = Param("until", "number", "up to this time (seconds since 1970, UTC), inclusive", minimum=0,
               maximum=LAST_TIME_S)
_LIMIT = Param("limit", "integer", "most records returned", default=100, minimum=1, maximum=data.MAX_ROWS)
_ORDER = Param("order", "string", "oldest or newest records first", default="newest", enum=("newest", "oldest"))

_VALUES = {"type": "object", "properties": {
    "count": {"type": "integer", "description": "publishes of the measurement snapshot so far"},
    "updated": {"type": ["number", "null"], "description": "when the values were published (s since 1970)"},
    "age_s": {"type": ["number", "null"]},
    "values": {"type": "object", "additionalProperties": {"type": ["number", "null"]},
               "description": "point name -> value in the point's unit (null: not available)"}}}
_LOGIN_BODY = {"type": "object", "required": ["user", "password"], "additionalProperties": False,
               "properties": {"user": {"type": "string", "maxLength": 64},
                              "password": {"type": "string", "maxLength": 64}}}
_CONFIG_BODY = {"type": "object", "required": ["changes"], "additionalProperties": False, "properties": {
    "changes": {"type": "object", "maxProperties": MAX_CHANGES,
                "description": "SECTION.OPTION -> new value (JSON: number, true/false, text, list)"},
    "reason": {"type": "string", "maxLength": 200}}}
_ACK_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "ids": {"type": "array", "maxItems": 64, "items": {"type": "integer", "minimum": 1},
            "description": "alarm ids (GET /api/alarms); absent: every unacknowledged alarm"}}}
_FORCE_BODY = {"type": "object", "required": ["state"], "additionalProperties": False, "properties": {
    "state": {"type": "string", "enum": ["on", "off", "release"]}}}
_CAPTURE = Param("name", "string", "capture name, as GET /api/captures lists it", where="path", max_length=80)
_PQ_LIMIT = Param("limit", "integer", "most records returned", default=1000, minimum=1, maximum=10000)
_KEEP = Param("order", "string", "which end of the range the limit keeps (records are answered oldest first)",
              default="newest", enum=("newest", "oldest"))
RATIO_MIN, RATIO_MAX = 0.001, 1e6    # bounds of the IEEE 519 inputs: typing errors beyond

_CERT_BODY = {"type": "object", "required": ["certificate", "key"], "additionalProperties": False, "properties": {
    "certificate": {"type": "string", "maxLength": 65536, "description": "PEM certificate (chain: leaf first)"},
    "key": {"type": "string", "maxLength": 65536, "description": "PEM private key, unencrypted"}}}


def endpoints(harmonic_channels: list[str], services: list[str]) -> list[Endpoint]:
    harmonic_channels = harmonic_channels or ["v_an"]
    services = services or ["metrology"]
    E = Endpoint
    return [
        E("POST", "/api/session", session.login, "Log in: sets the session cookie, answers the CSRF token",
          "session", None, body=_LOGIN_BODY, errors=(401,),
          description="Checked by the meter's security core for the interface 'web' (failed logins count towards "
                      "the lockout of that user from that address); at most [web] login_rate attempts a minute from one address."),
        E("GET", "/api/session", session.whoami, "Who is logged in, with the session's CSRF token", "session",
          LOGGED_IN),
        E("DELETE", "/api/session", session.logout, "Log out", "session", LOGGED_IN),
        E("GET", "/api/readings", data.readings, "Latest readings: measurements, power quality, status, alarms and I/O",
          "measurements", READ, returns=_VALUES,
          description="The scalar points of the point map's areas on the readings page (GET /api/points: each "
                      "point's area, the areas with their page)."),
        E("GET", "/api/energy", data.energy, "Energy registers, demands, peak demands, billing and test-mode registers",
          "measurements", READ, returns=_VALUES,
          description="The scalar points of the point map's areas on the energy page."),
        E("GET", "/api/harmonics", data.harmonics, "Harmonic magnitudes of one channel by order", "measurements",
          READ, params=(Param("channel", "string", "voltage or current channel", default=harmonic_channels[0],
                              enum=tuple(harmonic_channels)),)),
        E("GET", "/api/phasors", data.phasors, "Fundamental phasors (V A-N at 0 degrees, counter-clockwise)",
          "measurements", READ, description="Channels " + ", ".join(PHASOR_CHANNELS) + "."),
        E("GET", "/api/values", data.values, "Any quantity of the catalogue by name (as `meter read`)",
          "measurements", READ, errors=(400, 503),
          params=(Param("names", "string", "point names, comma-separated; name[i] for one element of an array "
                        "(GET /api/points lists them)", required=True, max_length=8000),),
          description="Values in the point's unit; null: not available; an array point is a list."),
        E("GET", "/api/points", data.points, "The point map: name, label, unit, kind, type, area and description of "
          "every value, the areas, the meter's local time", "measurements", READ,
          description="Labels are in the convention of [display] labels (ieee: phases A, B, C; iec: L1, L2, L3). "
                      "type: number, flag (0/1), count, code, time (seconds since 1970, UTC). clock: the "
                      "[revenue.time] offset, DST offset and DST periods (UTC seconds) a page shows local time by."),
        E("GET", "/api/stream", session.stream, "Live readings as server-sent events (event 'readings')",
          "measurements", READ, stream=True, errors=(503,),
          description="One event per publish of the measurement snapshot (about one a second); the stream ends "
                      "when the session does. At most [web] max_streams at once."),
        E("GET", "/api/events", data.events, "The meter's event log by time range", "logs", READ,
          params=(_SINCE, _UNTIL, _LIMIT, _ORDER,
                  Param("min_priority", "integer", "only events of at least this priority", default=0,
                        minimum=0, maximum=255),
                  Param("kept", "boolean", "the audit trail kept apart (user and configuration changes, lockouts, "
                        "tamper, commands), which no flood of failed attempts reaches", default=False)),
          description="`unread` is the event log's unread counter: records after the last one marked read."),
        E("POST", "/api/events/read", data.events_read, "Mark every event read (the unread counter to 0)", "logs",
          LOGGED_IN, description="The operation is alarm_ack: acknowledging what the meter reported."),
        E("GET", "/api/pq/events", pq.pq_events, "The recorder's PQ events (dips, swells, interruptions, "
          "transients, RVC) by time range, oldest first", "power quality", READ, params=(_SINCE, _UNTIL, _PQ_LIMIT),
          errors=(503,), description="Each event: kind, start time (ts), duration, residual or peak values, "
                                     "phases, min/max/avg of V, I, THD, PF and f during it (detail.stats), "
                                     "and the waveform capture it triggered. `counts`: the answer's events of "
                                     "each kind; `itic`: the ITI (CBEMA) curve and the kinds that lie on it "
                                     "(dips, swells, interruptions; not RVCs nor transients)."),
        E("GET", "/api/captures", pq.captures, "The waveform captures kept (COMTRADE), oldest first",
          "power quality", READ),
        E("GET", "/api/captures/{name}", pq.capture, "One waveform capture as JSON: time axis and each channel's "
          "values in primary units", "power quality", READ, params=(_CAPTURE,), errors=(404, 409),
          description=f"At most {pq.MAX_WAVEFORM_POINTS} values: a longer capture is decimated (every "
                      "'decimation'-th sample); the COMTRADE files carry all of them. Samples the meter lost "
                      "(missing in the COMTRADE file) are null."),
        E("GET", "/api/captures/{name}/{part}", pq.capture_file, "Download the COMTRADE .cfg or .dat of one capture",
          "power quality", READ, params=(_CAPTURE, Param("part", "string", "which file", where="path",
                                                          enum=pq.COMTRADE_PARTS)), errors=(404,),
          returns={"type": "string", "format": "binary"}),
        E("GET", "/api/pq/export", pq.export, "Download PQ events, waveform captures and 10-min values as a PQDIF "
          "file (IEEE 1159.3)", "power quality", READ, errors=(503,),
          params=(Param("format", "string", "file format", default="pqdif", enum=EXPORT_FORMATS), _SINCE, _UNTIL,
                  Param("parts", "string", f"what goes in, comma-separated: {', '.join(EXPORT_PARTS)}",
                        default=",".join(EXPORT_PARTS), max_length=40)),
          returns={"type": "string", "format": "binary"},
          description=f"The events that started in the range, the newest {EXPORT_MAX_CAPTURES} captures "
                      "triggered in it and its 10-min values; what `meter pq export --format pqdif` writes."),
        E("GET", "/api/pq/trend", pq.trend, "Trend and forecast of a quantity from the 10-min values (ION7400 "
          "trending and forecasting)", "power quality", READ, errors=(503,),
          params=(Param("target", "string", "quantity", required=True, enum=tuple(TREND_TARGETS)),
                  Param("interval", "string", "interval length", default="daily", enum=tuple(TREND_INTERVALS))),
          description="The last 24 hours, 31 days, 8 weeks or 12 months: each one's mean, min and max, and a "
                      "forecast of the present and the next (a straight line through the complete intervals' "
                      "means, at least two); `meter pq trend` answers the same."),
        E("GET", "/api/aggregates", pq.aggregates, "Aggregated PQ values (IEC 61000-4-30 3 s, 10 min, 2 h) by time "
          "range: the trends", "power quality", READ, errors=(503,),
          params=(Param("kind", "string", "aggregation interval", default="10min", enum=AGGREGATE_KINDS),
                  _SINCE, _UNTIL, _PQ_LIMIT, _KEEP,
                  Param("names", "string", "only these values, comma-separated (e.g. v_ln,thd); all when empty "
                        f"(then at most {pq.MAX_WHOLE_RECORDS} records)",
                        max_length=400))),
        E("GET", "/api/recorders", pq.recorders, "The data recorders: number, name, trigger, channels",
          "power quality", READ, errors=(503,)),
        E("GET", "/api/recorders/{number}", pq.recorder_read, "Records of one data recorder by time range",
          "power quality", READ, errors=(503,),
          params=(Param("number", "integer", "recorder number", where="path", minimum=1, maximum=16),
                  _SINCE, _UNTIL, _PQ_LIMIT)),
        E("GET", "/api/reports/{standard}", pq.report, "EN 50160 or IEEE 519 compliance of the present or previous "
          "week (Monday 00:00 UTC)", "power quality", READ, errors=(503,),
          params=(Param("standard", "string", "which standard", where="path", enum=("en50160", "ieee519")),
                  Param("week", "string", "observation week", default="present", enum=("present", "previous")),
                  Param("isc_il", "number", "IEEE 519: short-circuit ratio ISC/IL at the point of common "
                        "coupling (required for ieee519)", minimum=RATIO_MIN, maximum=RATIO_MAX),
                  Param("il", "number", "IEEE 519: maximum demand load current I_L, primary A (default: "
                        "[metrology] tdd_demand_current, else nominal_current)", minimum=RATIO_MIN, maximum=RATIO_MAX),
                  Param("bus_kv", "number", "IEEE 519: line-to-line kV at the PCC (default: from [metrology] "
                        "nominal_voltage)", minimum=RATIO_MIN, maximum=RATIO_MAX)),
          description="Computed as `meter report` does, from the recorder's aggregates."),
        E("GET", "/api/revenue", data.revenue_registers, "Every revenue register: energy by phase and TOU rate, "
          "demands, peaks with their coincident values, cumulative demands, min/max, snapshots, counters", "logs",
          READ, errors=(503,), description="As `meter revenue registers` shows them (metrology.registers)."),
        E("GET", "/api/load-profile", data.load_profile, "Load-profile records by time range", "logs", READ,
          params=(_SINCE, _UNTIL, _LIMIT, _ORDER)),
        E("GET", "/api/diagnostics", data.diagnostics,
          "Services, sample gaps and the cross-check of the two energy paths", "diagnostics", READ),
        E("POST", "/api/services/{name}/restart", actions.service_restart, "Restart one service", "diagnostics",
          "restart", params=(Param("name", "string", "service name", where="path", enum=tuple(services)),),
          errors=(404, 503)),
        E("GET", "/api/config", setup.config_read,
          "The configuration: every section and option with its value, default, bounds and help", "setup", READ),
        E("POST", "/api/config", setup.config_write,
          "Change options: validated, saved as a new version with the user; answers old and new values", "setup",
          LOGGED_IN, body=_CONFIG_BODY, errors=(403,),
          description="Refusals carry the schema's message (section, option, what is allowed). The operation is "
                      "config_set, config_set_sealed for the sealed (metrology, revenue) sections, which the revenue "
                      "lock refuses, and user_admin for [security]."),
        E("GET", "/api/certificate", setup.certificate, "The HTTPS certificate in use", "setup", READ),
        E("POST", "/api/certificate", setup.certificate_upload, "Install an uploaded certificate and key", "setup",
          WEB_FILES, body=_CERT_BODY),
        E("POST", "/api/certificate/regenerate", setup.certificate_regenerate,
          "Make a new self-signed certificate", "setup", WEB_FILES),
        E("DELETE", "/api/certificate", setup.certificate_delete,
          "Delete the uploaded certificate (the self-signed one is used again)", "setup", WEB_FILES, errors=(404,)),
        E("GET", "/api/resets", actions.resets, "The resets and commands the meter offers", "resets", READ),
        E("POST", "/api/resets/{name}", actions.reset, "Run a reset (demand, energy, billing period) or demand sync",
          "resets", LOGGED_IN, params=(Param("name", "string", "which reset", where="path",
                                        enum=tuple(actions.RESETS)),
                                  Param("value", "number", "the value a command that sets something takes "
                                        "(time_set: seconds since 1970, UTC)", minimum=0)), errors=(400, 409, 503),
          description="The operation is the reset's own (GET /api/resets lists each with its privilege and, in "
                      "`takes`, the value it needs); the revenue lock refuses the revenue resets."),
        E("GET", "/api/upgrade", actions.upgrade_status, "Slots, installed version, revenue lock", "upgrade", READ,
          errors=(409, 503)),
        E("POST", "/api/upgrade", actions.upgrade_upload, "Upload a signed firmware image and install it",
          "upgrade", "upgrade_install", upload=True, errors=(409, 422, 503),
          description="The raw image as the body (application/octet-stream), at most [web] max_upload bytes. The "
                      "upgrade service checks the signature, the manifest, every payload file's SHA-256, version, "
                      "board and revenue lock before it answers; the answer carries the attempt id to follow. A "
                      "damaged, unsigned or tampered image is refused with 422 and its reason; while another "
                      "install runs (or is on probation) the upload is refused with 409. A refused image is "
                      "deleted; the running install's image is never touched."),
        E("GET", "/api/upgrade/log", actions.upgrade_log, "The newest upgrade log rows", "upgrade", READ,
          params=(Param("n", "integer", "rows", default=50, minimum=1, maximum=1000),), errors=(409, 503)),
        E("GET", "/api/upgrade/{attempt}", actions.upgrade_progress, "Progress and outcome of one install attempt",
          "upgrade", READ, params=(Param("attempt", "string", "attempt id from the upload's answer", where="path",
                                         max_length=64),), errors=(404, 409, 503)),
        E("GET", "/api/alarms", alarms.alarms, "Active and historic alarms (io service), highest priority first",
          "alarms and I/O", READ, errors=(503,)),
        E("POST", "/api/alarms/ack", alarms.acknowledge, "Acknowledge alarms by id, or every one without ids",
          "alarms and I/O", LOGGED_IN, body=_ACK_BODY, errors=(403, 409, 503),
          description="The operation is alarm_ack. A unary alarm (Power Up, Sag, Swell, Interruption) ends with "
                      "its acknowledgement."),
        E("GET", "/api/io", alarms.io_status, "Digital inputs (state, counts, totals) and outputs (level, source, "
          "forced, pulses)", "alarms and I/O", READ, errors=(503,)),
        E("POST", "/api/io/outputs/{number}", alarms.force, "Force a digital output on or off, or release it",
          "alarms and I/O", LOGGED_IN, body=_FORCE_BODY, errors=(403, 409, 503),
          params=(Param("number", "integer", "output number, from 1", where="path", minimum=1, maximum=16),),
          description="The operation is output_force; the change is in the event log with the user."),
        E("GET", "/api/openapi.json", session.openapi_document, "This API as an OpenAPI 3.1 document", "meta", None),
    ]
