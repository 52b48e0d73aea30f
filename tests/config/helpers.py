"""What the tests of ``tests/config`` share: a long and a short secret, a collector to export to
and the OTLP endpoints refused and accepted."""

from __future__ import annotations

LONG_SECRET = "s3cr3t-" + "k" * 40
SHORT_SECRET = "short-s3cr3t-value"


# OTEL_EXPORTER_OTLP_ENDPOINT values by protocol. http/protobuf: the SDK posts to the value plus
# /v1/<signal> with requests, which needs an http(s) URL with a host. grpc: the SDK dials the
# URL's host:port, or the value itself when it has none, as a gRPC target (a name or address,
# port 443 when none is given, or a target URI such as unix:/path).
OTLP_ENDPOINTS_REFUSED = [
    ("http/protobuf", "notaurl"),
    ("http/protobuf", "collector:4318"),
    ("http/protobuf", "ftp://collector:4318"),
    ("http/protobuf", "http://:4318"),
    ("http/protobuf", "http:/collector:4318"),
    ("http/protobuf", "http://collector:port"),
    ("http/protobuf", "http://collector:99999"),
    ("http/protobuf", "http://coll ector:4318"),
    ("grpc", ":4317"),
    ("grpc", "https://:4317"),
    ("grpc", "http://"),
    ("grpc", "collector:port"),
    ("grpc", "[::1]:port"),
    ("grpc", "[::1"),
    ("grpc", "not a url"),
    ("grpc", "collector:4317:1"),
    ("grpc", "collector:99999"),
]


OTLP_ENDPOINTS_ACCEPTED = [
    ("http/protobuf", "http://collector:4318"),
    ("http/protobuf", "HTTPS://collector.example.com"),
    ("http/protobuf", "http://[::1]:4318/"),
    ("grpc", "notaurl"),  # a host name: TLS to its port 443
    ("grpc", "collector:4317"),
    ("grpc", "http://collector:4317"),
    ("grpc", "https://collector.example.com"),
    ("grpc", "[::1]:4317"),
    ("grpc", "::1"),
    ("grpc", "unix:/run/otel.sock"),
    ("grpc", "dns:///collector:4317"),
]


# An OTLP endpoint set, so the OTLP exporters' settings are read.
OTLP_COLLECTOR = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4317"}
