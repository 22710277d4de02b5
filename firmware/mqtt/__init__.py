"""MQTT publishing for fleets: topics and payloads (``topics``), what is collected (``collect``), the
broker link with store-and-forward (``link``). The service is ``firmware.services.mqtt``; docs/fleet.md."""
