"""Host-side firmware image tools: build, keygen, sign, verify (``meter image ...``)."""
