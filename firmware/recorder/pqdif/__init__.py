"""PQDIF (IEEE 1159.3) export of the recorder's PQ events, waveform captures and 10-min values.

``ids`` holds the standard's tag and identifier GUIDs and codes the meter writes (its one owner), ``physical``
the record and element encoding, ``logical`` the container, data source and observation records built from
what the recorder keeps, ``export`` reads them from the data directory for ``meter pq export`` and the web.
"""
