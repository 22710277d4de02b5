"""What the recorder service owns: the PQ stores in ``data_dir/recorder.db`` (``store``), waveform captures
(``capture``), high-speed RMS bursts (``hsrms``) and the data recorders (``datarec``)."""
