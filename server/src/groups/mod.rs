//! Device groups: static sets of devices (a device may be in several), for filtering the fleet
//! and acting on many devices at once.

pub mod http;
pub mod model;
pub mod repo;
