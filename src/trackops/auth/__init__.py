"""Users, API tokens and per-resource permissions for `trackops serve --auth`."""
