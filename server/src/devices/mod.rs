//! Devices: the things a tenant operates. Each has a name unique in its tenant and an access
//! token (256-bit random, shown once, stored as SHA-256) that it connects with.

pub mod credentials;
pub mod device_api;
pub mod http;
pub mod inactivity;
pub mod lost;
pub mod model;
pub mod repo;
