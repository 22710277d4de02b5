"""DLMS/COSEM server (IEC 62056-5-3, -6-2; TCP wrapper -47, HDLC -46): the meter read by a head-end system.

``axdr`` encodes and decodes COSEM data, ``acse`` the association requests, ``security`` the HLS-GMAC and
AES-GCM protection with the meter's own keys (``keys``), ``objects`` the COSEM objects projected from the
catalogue, ``session`` the xDLMS services of one association, ``wrapper`` and ``hdlc`` the two link layers, and
``app`` the servers the comms service runs. docs/dlms.md is the user's side.
"""
