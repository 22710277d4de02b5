"""Host-side firmware image tools: ``meter-image build|keygen|sign`` and the system image (``make image``)."""
