"""Field upgrade: image format and checks, trust store, A/B slots, installer, boot guard, upgrade log.

Nothing here runs metrology; the boot guard only starts the supervisor from a slot and watches
its ``status`` over the control socket.
"""
