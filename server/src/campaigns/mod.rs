//! OTA campaigns: one package rolled out to a target of devices in waves or at a rate, under a
//! cap on updates in flight, gated between waves on the success rate and per device on its
//! health after the update, stopping itself (and optionally rolling back) when too many fail.
//! People make and steer them (`service`, `http`); the worker's `engine` runs them.

pub mod engine;
pub mod http;
pub mod model;
pub mod repo;
pub mod service;
