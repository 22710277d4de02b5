"""Hardware backends. Each imports its device library (spidev, RPi.GPIO, gpiod) only when opened."""
