"""Avro reader schemas of the supported openedx-events and their catalog."""
