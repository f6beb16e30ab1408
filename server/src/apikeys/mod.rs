//! API keys: how integrations call the REST API without logging in as a person.
//!
//! A key belongs to the person who created it and holds a subset of their permissions and groups;
//! at every request its access is its creator's access *now*, narrowed to the key (so it can never
//! do more than its creator). The secret (`stead_` and 43 base64url characters, so secret
//! scanners can recognise a leaked one) is shown once and stored only as its SHA-256; every
//! request looks it up, so a revocation holds on every node at the next request. Each key is rate
//! limited (`STEAD_API_KEY_REQUESTS_PER_MINUTE`, shared across nodes through the live store).

pub mod http;
pub mod model;
pub mod repo;
pub mod service;

/// What every secret starts with.
pub const PREFIX: &str = "stead_";
