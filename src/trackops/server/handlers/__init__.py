"""REST handlers, one module per area; each module's ``ROUTES`` is collected by `server.factory`."""
