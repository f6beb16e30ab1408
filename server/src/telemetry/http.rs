//! Telemetry, presence, timeline and live routes under `/api/v1/devices/{id}`.
