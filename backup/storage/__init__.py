"""The repository format and its I/O: object keys, encoding, manifests, segment payloads, and one
storage interface with a backend per URL scheme (file://, s3://). Imports nothing else of backup/
but errors."""
