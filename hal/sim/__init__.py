"""The simulated board: an ADE9000 that speaks the chip's SPI protocol, its GPIO lines, an ADC model and
the signal sources (synthetic three-phase generator, COMTRADE replay) that feed it."""
