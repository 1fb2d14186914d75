"""Bulk import and export of devices and locations (``dlr-gateway import|export``,
``/v1/imports``): the CSV formats, whole-file validation, the plan, the apply step through
the report pipeline, progress kept in the state store. No web framework here."""
