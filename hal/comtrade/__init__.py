"""COMTRADE (IEEE C37.111-1991/1999/2013) recordings: reader, writer, mapping to the meter's inputs, replay source.

- ``cfg``: the configuration file, every line and field checked (file, line and field named on refusal);
- ``dat``: the data file in ASCII, BINARY (int16), BINARY32 (int32) or FLOAT32, checked against the .cfg
  (sample count, record size, field count, sample numbers, digital values, time stamps);
- ``reader``: both together, ``a * x + b`` scaling, primary/secondary, and the time axis (one rate, several
  rates, or the time stamps);
- ``mapping``: which channel feeds IA VA IB VB IC VC IN (a channel map, names, ph and units; ambiguity refused);
- ``source``: ``ComtradeSource``, the recording interpolated on its real time axis for the simulated chip;
- ``writer``: ``write_comtrade`` for waveform records out.
"""
from hal.comtrade.cfg import AnalogChannel
from hal.comtrade.mapping import ORDER, Mapping, meter_channels, parse_channel_map, resolve
from hal.comtrade.reader import Comtrade, read_comtrade
from hal.comtrade.source import ComtradeSource, cubic_interp
from hal.comtrade.writer import write_comtrade

__all__ = ["ORDER", "AnalogChannel", "Comtrade", "ComtradeSource", "Mapping", "cubic_interp", "meter_channels",
           "parse_channel_map", "read_comtrade", "resolve", "write_comtrade"]
