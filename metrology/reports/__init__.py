"""Power-quality compliance reports computed from the stored 3-s, 10-min and 2-h aggregates.

``en50160`` (weekly supply-voltage statistics) and ``ieee519`` (harmonic limits at the PCC) take aggregate
records ``{"ts": interval end (s), "kind": "3s" | "10min" | "2h", "flagged": bool, "gap": bool,
"values": {name: float | list}}`` with the value names of ``metrology.intervals`` and return plain dicts
ready for JSON. Pure computation: reading the records and drawing them is ``firmware/cli_report.py``'s job.
"""
