//! Over-the-air updates. Packages: firmware and software images a tenant uploads (streamed to
//! the blob store, checksummed in every algorithm the device SDKs verify, optionally signed with
//! Ed25519 by one of the tenant's keys), listed, downloaded whole or by range, and deleted. Each
//! device may have a target package per kind: its shared attributes tell the device's SDK to
//! download it (`delivery`: ThingsBoard's chunk protocol over MQTT, the HTTP device API), and the
//! device's reports move the target through its states (`tracker`).

pub mod checksums;
pub mod delivery;
pub mod http;
pub mod model;
pub mod repo;
pub mod service;
pub mod tracker;
