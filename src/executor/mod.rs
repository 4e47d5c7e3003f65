//! Per-host execution.
