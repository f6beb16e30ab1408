//! Over-the-air updates. Packages: firmware and software images a tenant uploads (streamed to
//! the blob store, checksummed in every algorithm the device SDKs verify, optionally signed with
//! Ed25519 by one of the tenant's keys), listed, downloaded whole or by range, and deleted.

pub mod checksums;
pub mod http;
pub mod model;
pub mod repo;
pub mod service;
