"""The HTTP API's blueprints, one per resource; each view declares itself with api.endpoint."""
