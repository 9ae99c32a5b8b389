"""What every stage runs on: device choice, precision, timers, progress bars, redaction, GC tuning."""
