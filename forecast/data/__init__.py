"""Data: ingest -> windows -> datamodule."""
