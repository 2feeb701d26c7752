//! monitoring-agent: a Prometheus host-metrics agent for Linux.
pub mod collectors;
pub mod exposition;
pub mod privilege;
pub mod sandbox;
