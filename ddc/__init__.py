"""DDC: the Data Diode Connector."""

__version__ = "0.1.0"
