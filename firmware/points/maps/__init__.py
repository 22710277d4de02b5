"""Per-protocol point lists (DNP3 indexes, OBIS codes, SNMP OIDs), merged into the point map by name."""
