//! Device profiles: what a kind of device shares (provisioning key and strategy, inactivity
//! timeout, rate-limit overrides). Every tenant has a default profile; every device has a profile.

pub mod http;
pub mod model;
pub mod repo;
