"""leadmail: turns a sales mailbox into CRM leads."""

__version__ = "0.1.0"
