"""The web interface: HTTPS pages and the JSON API they use (served by ``firmware.services.web``).

``routes`` is the API's route table and ``api`` what is generated from it (argument checks, OpenAPI);
``app`` serves it with the checks every request passes; ``readings``, ``data``, ``setup``, ``actions`` and
``session`` are the handlers; ``auth`` is the one door to the security core; ``sessions``, ``limits``,
``certs`` and ``server`` hold sessions, per-client limits, the certificate and the listening sockets;
``static`` holds the pages' own hand-written assets (nothing is loaded from elsewhere).
"""
