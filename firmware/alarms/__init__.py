"""Alarms: setpoint and digital-input alarms, their priorities, active and historic lists, acknowledgement.

Pure evaluation (no processes, clocks or files): ``setpoint`` decides pickup and dropout of one alarm from
values and the time passed in; ``manager`` keeps every alarm's state, the lists and the acknowledgements and
returns what happened so the service that runs it (``firmware.services.io``) can act: event log, outputs,
waveform capture.
"""
