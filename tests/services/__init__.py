"""Throwaway servers the tests start on free loopback ports (see shared/ARCHITECTURE.md)."""
