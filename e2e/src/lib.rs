//! Talking to a running Stead from the outside: a typed REST client that the end-to-end tests
//! (and, with the ingress, the device simulator and load generator) share.

pub mod client;
pub mod wire;

pub use client::{Client, Reply};
