"""Secrets: AES-GCM primitives, the encrypted secret store and the in-memory `SecretCache`."""
