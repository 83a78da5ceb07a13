"""The ``suanli`` command."""
