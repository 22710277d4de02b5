"""E-mail alerts and scheduled log mails over SMTP with STARTTLS."""
from firmware.config.schema import Bool, Duration, Int, ListOf, Option, Section, Str
from firmware.config.sections.mqtt import HOST

ADDRESS = Str(254, r"[^@\s<>]+@[^@\s<>]+", "an e-mail address (name@domain)")

SECTIONS = [
    Section("email", [
        Option("enabled", Bool(), False, "Run the e-mail alert service."),
        Option("host", HOST, "127.0.0.1", "SMTP server (the relay the meter sends through)."),
        Option("port", Int(1, 65535), 587, "SMTP port (587: submission with STARTTLS)."),
        Option("starttls", Bool(), True,
               "Upgrade the connection with STARTTLS before sending (certificate and host name verified); "
               "a server that does not offer it is an error, never a silent plain-text send."),
        Option("ca_file", Str(255), "", "CA certificates (PEM) for the server; empty: the system's.",
               local=True),
        Option("username", Str(255), "", "SMTP AUTH user (empty: no login)."),
        Option("password", Str(255), "", "SMTP AUTH password.", secret=True),
        Option("sender", ADDRESS, "meter@localhost", "From address."),
        Option("recipients", ListOf(ADDRESS, 0, 20), (), "To addresses."),
        Option("timeout", Duration(1, 300), 60.0, "Deadline of each SMTP operation.", "s"),
        Option("retries", Int(0, 100), 5, "Further attempts after a failed send before the mail is given up."),
        Option("retry_interval", Duration(1, 86400), 60.0,
               "Wait before the first retry; doubled for each further one.", "s"),
        Option("alarms", Bool(), True,
               "Mail when an alarm begins (alarm, revenue fault, PQ event, lost time sync) and when "
               "load-profile events such as an outage, time set or energy mismatch are recorded."),
        Option("min_priority", Int(0, 255), 128,
               "Records of the meter's event log (PQ events, alarms, security) at or above this priority are "
               "mailed as alarms (128: Medium and High, the ION alarm priority bands)."),
        Option("log_mail_interval", Duration(0, 31 * 86400), 86400.0,
               "Interval of the scheduled mail of the load profile (CSV attachment); 0: none.", "s"),
        Option("max_mails_per_hour", Int(1, 1000), 30,
               "Alarm mails beyond this within an hour are summarised in the next one instead."),
    ], "E-mail alerts (docs/email.md)."),
]
