"""The meter's security: users and privileges, login lockout, sessions, the one authorization point, security
events and syslog.

- ``privileges``: the seven privileges (read, peak-demand reset, time sync, setup, security, user-defined,
  master).
- ``users``: ``UserStore`` (up to 50 users, argon2id hashes, lockout per user and protocol, the factory user).
- ``authorize``: ``authorize(identity, operation, interface, ...)`` / ``decide`` and the revenue lock's list
  of blocked operations; read its docstring before adding an interface.
- ``peer``: the control socket's caller from SO_PEERCRED.
- ``sessions``: login sessions with an inactivity timeout.
- ``audit`` and ``syslog``: security events into the event log and to a syslog collector.
"""
