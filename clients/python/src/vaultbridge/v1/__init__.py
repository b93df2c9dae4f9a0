"""The gRPC stubs generated from proto/vaultbridge/v1 (see generate_stubs.py); the
typed client in the parent package is the supported API."""
