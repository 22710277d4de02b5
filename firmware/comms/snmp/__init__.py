"""The SNMP agent (docs/snmp.md): BER codec, USM, the MIB projected from the catalogue, notifications."""
