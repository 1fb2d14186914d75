"""``python -m gateway.settings``: the README's configuration table."""

from gateway.settings import configuration_table

print(configuration_table(), end="")
