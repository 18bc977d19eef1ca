"""I/O with the outside world: EDF files, LSL, MQTT, payload codecs. Imports without torch."""
