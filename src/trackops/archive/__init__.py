"""The backup repository format (docs/backup-format.md): backends, objects, manifests, dumps, indexes."""
