"""What verified bus messages become: Prometheus series, OTLP spans and logs, alert deliveries."""
