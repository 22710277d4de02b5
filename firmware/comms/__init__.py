"""Communication protocols served by the comms service (Modbus today; BACnet and DNP3 beside it later)."""
