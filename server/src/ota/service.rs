//! Uploading and deleting packages, and the tenant's signing keys: each change and its audit
//! entry in one transaction. An image streams into the blob store before its row is written (its
//! checksums decide where it goes); when the row cannot be written, an image no other package
//! holds is removed again.

use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sea_orm::ConnectionTrait;
use stead_api_types::{
    AssignPackage, AttributeScope, ChecksumAlgorithm, CreateSigningKey, DeviceOtaTarget, OtaState,
    Package, PackageKind, SigningKey, UploadPackage,
};
use uuid::Uuid;

use super::checksums::Checksummer;
use super::model::{package, signing_key, target};
use super::repo;
use crate::app::AppState;
use crate::audit;
use crate::auth::{Actor, TenantCtx};
use crate::blobs::{Blobs, UploadError};
use crate::error::{Error, Result};
use crate::ids::DeviceId;

const MAX_DESCRIPTION: usize = 1_000;
const MAX_KEYS: usize = 20;

fn check_title(raw: &str) -> Result<String> {
    stead_api_types::check_name("package title", raw, 64)
        .map_err(|e| Error::invalid("invalid_field", "title", e))
}

fn check_version(raw: &str) -> Result<String> {
    let v = raw.trim();
    if v.is_empty() || v.chars().count() > 64 || v.chars().any(char::is_whitespace) {
        return Err(Error::invalid(
            "invalid_field",
            "version",
            "a version has 1 to 64 characters and no spaces",
        ));
    }
    Ok(v.to_owned())
}

fn check_description(raw: Option<&str>) -> Result<String> {
    let d = raw.unwrap_or("").trim();
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(Error::invalid(
            "invalid_field",
            "description",
            format!("a description has at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(d.to_owned())
}

fn check_sha256(raw: Option<&str>) -> Result<Option<String>> {
    raw.map(|s| {
        let s = s.trim().to_ascii_lowercase();
        if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(s)
        } else {
            Err(Error::invalid(
                "invalid_field",
                "sha256",
                "a SHA-256 is 64 hexadecimal digits",
            ))
        }
    })
    .transpose()
}

fn check_signature(raw: Option<&str>) -> Result<Option<Signature>> {
    raw.map(|s| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| {
                Error::invalid(
                    "invalid_field",
                    "signature",
                    "a signature is the base64 of a 64-byte Ed25519 signature",
                )
            })
    })
    .transpose()
}

fn parse_public_key(raw: &str) -> Result<VerifyingKey> {
    base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| {
            Error::invalid(
                "invalid_field",
                "public_key",
                "a public key is the base64 of a 32-byte Ed25519 key",
            )
        })
}

/// The limits an upload is held to: the package size limit and what is left of the quota.
struct Room {
    max_package: u64,
    quota: u64,
    used: u64,
}

impl Room {
    fn limit(&self) -> u64 {
        self.max_package.min(self.quota.saturating_sub(self.used))
    }

    /// Why `size` bytes do not fit.
    fn refusal(&self, size: u64) -> Error {
        if size > self.max_package {
            Error::TooLarge {
                code: "package_too_large",
                detail: format!(
                    "a package has at most {} bytes (STEAD_OTA_MAX_PACKAGE_BYTES)",
                    self.max_package
                ),
            }
        } else {
            Error::conflict(
                "quota_exceeded",
                format!(
                    "the ota_bytes quota is reached: this tenant may store {} bytes of packages and stores {}; \
                     delete old packages or ask the platform operator to raise it",
                    self.quota, self.used
                ),
            )
        }
    }
}

async fn room(state: &AppState, ctx: &TenantCtx) -> Result<Room> {
    let overrides = crate::tenants::repo::find(&state.db, ctx.tenant_id())
        .await?
        .map(|t| crate::tenants::quotas::overrides_of(&t))
        .unwrap_or_default();
    let defaults = crate::tenants::quotas::Defaults::of(&state.config);
    Ok(Room {
        max_package: state.config.ota_max_package_bytes,
        quota: defaults.ota_bytes_of(&overrides),
        used: repo::stored_bytes(&state.db, ctx).await?,
    })
}

/// Removes an image unless a package of the tenant holds it.
async fn forget_image(state: &AppState, ctx: &TenantCtx, sha256: &str) {
    match repo::image_in_use(&state.db, ctx, sha256).await {
        Ok(false) => {
            if let Err(e) = state
                .blobs
                .delete(&Blobs::key_of(ctx.tenant_id(), sha256))
                .await
            {
                tracing::warn!(error = %e, "removing a package image failed; it stays in the blob store");
            }
        }
        Ok(true) => {}
        Err(e) => tracing::warn!(error = %e, "could not tell whether an image is in use; kept"),
    }
}

/// `POST /ota/packages`: the image streams from `body` into the blob store.
pub async fn upload<S, E>(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    q: UploadPackage,
    content_length: Option<u64>,
    body: S,
) -> Result<Package>
where
    S: futures_util::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let title = check_title(&q.title)?;
    let version = check_version(&q.version)?;
    let description = check_description(q.description.as_deref())?;
    let expected = check_sha256(q.sha256.as_deref())?;
    let signature = check_signature(q.signature.as_deref())?;
    if let Some(profile) = q.profile_id {
        crate::profiles::repo::get(&state.db, ctx, profile)
            .await
            .map_err(|_| {
                Error::invalid(
                    "unknown_profile",
                    "profile_id",
                    format!("there is no device profile {profile} in this tenant"),
                )
            })?;
    }
    let keys = repo::keys(&state.db, ctx).await?;
    if signature.is_some() && keys.is_empty() {
        return Err(Error::invalid(
            "invalid_signature",
            "signature",
            "the tenant has no signing key to check a signature with: add one first",
        ));
    }
    let room = room(state, ctx).await?;
    if let Some(len) = content_length
        && len > room.limit()
    {
        return Err(room.refusal(len));
    }
    let sums = Checksummer::start();
    let stored = state
        .blobs
        .upload(ctx.tenant_id(), body, room.limit(), |chunk| {
            sums.feed(chunk)
        })
        .await;
    let stored = match stored {
        Ok(s) => s,
        Err(UploadError::TooLarge { limit }) => return Err(room.refusal(limit + 1)),
        Err(UploadError::Body(e)) => {
            return Err(Error::invalid(
                "upload_interrupted",
                "body",
                format!("the upload ended before its end: {e}"),
            ));
        }
        Err(UploadError::Store(e)) => return Err(anyhow::anyhow!("blob store: {e}").into()),
    };
    let checksums = sums.finish().await?;
    let sha256 = checksums
        .get(&ChecksumAlgorithm::Sha256)
        .cloned()
        .unwrap_or_default();
    let refused = |e: Error| async {
        if let Err(d) = state.blobs.delete(&stored.key).await {
            tracing::warn!(error = %d, "removing a refused upload failed");
        }
        Err(e)
    };
    if stored.size == 0 {
        return refused(Error::invalid(
            "empty_package",
            "body",
            "the upload is empty: send the image as the request body",
        ))
        .await;
    }
    if let Some(expected) = &expected
        && *expected != sha256
    {
        return refused(Error::invalid(
            "checksum_mismatch",
            "sha256",
            format!("the image's SHA-256 is {sha256}, not {expected}: the upload was damaged or is another file"),
        ))
        .await;
    }
    let mut signing_key_id = None;
    if let Some(signature) = &signature {
        let digest = hex::decode(&sha256).unwrap_or_default();
        signing_key_id = keys
            .iter()
            .find(|k| {
                parse_public_key(&k.public_key)
                    .is_ok_and(|key| key.verify(&digest, signature).is_ok())
            })
            .map(|k| k.id);
        if signing_key_id.is_none() {
            return refused(Error::invalid(
                "invalid_signature",
                "signature",
                "no signing key of the tenant made this signature of the image's SHA-256",
            ))
            .await;
        }
    }
    let key = Blobs::key_of(ctx.tenant_id(), &sha256);
    if let Err(e) = state.blobs.settle(&stored.key, &key).await {
        return refused(anyhow::anyhow!("blob store: {e}").into()).await;
    }
    let kind = q.kind;
    let written = async {
        let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
        // Another upload may have committed meanwhile.
        let used = repo::stored_bytes(&txn, ctx).await?;
        if used + stored.size > room.quota {
            return Err(Room { used, ..room }.refusal(stored.size));
        }
        let p = repo::insert(
            &txn,
            ctx,
            package::Model {
                id: Uuid::new_v4(),
                tenant_id: ctx.tenant_id().0,
                kind: kind.as_str().to_owned(),
                title,
                version,
                description,
                profile_id: q.profile_id,
                size: stored.size as i64,
                sha256: sha256.clone(),
                checksums: serde_json::to_value(&checksums).unwrap_or_default(),
                signing_key_id,
                created_by: Some(actor.user_id.0),
                created_at: Utc::now(),
            },
        )
        .await?;
        audit::record(
            &txn,
            Some(ctx.tenant_id()),
            actor,
            "ota.package.upload",
            "package",
            Some(p.id),
            serde_json::json!({"kind": p.kind, "title": p.title, "version": p.version,
                               "size": p.size, "sha256": p.sha256, "signed": signing_key_id.is_some()}),
        )
        .await?;
        txn.commit().await?;
        Ok(p)
    }
    .await;
    match written {
        Ok(p) => Ok(repo::to_api(p)),
        Err(e) => {
            forget_image(state, ctx, &sha256).await;
            Err(e)
        }
    }
}

pub async fn delete(state: &AppState, ctx: &TenantCtx, actor: &Actor, id: Uuid) -> Result<()> {
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let p = repo::get(&txn, ctx, id).await?;
    let using = repo::devices_targeting(&txn, ctx, id).await?;
    if using > 0 {
        return Err(Error::conflict(
            "package_in_use",
            format!("{using} device(s) have this package as their target: give them another first"),
        ));
    }
    if crate::campaigns::repo::package_in_campaign(&txn, ctx, id).await? {
        return Err(Error::conflict(
            "package_in_use",
            "a campaign updates devices to this package: delete the campaign first",
        ));
    }
    repo::delete(&txn, ctx, id).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "ota.package.delete",
        "package",
        Some(id),
        serde_json::json!({"kind": p.kind, "title": p.title, "version": p.version}),
    )
    .await?;
    txn.commit().await?;
    forget_image(state, ctx, &p.sha256).await;
    Ok(())
}

pub async fn create_key(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    body: CreateSigningKey,
) -> Result<SigningKey> {
    let name = crate::error::parse_name("signing key", &body.name, 100)?;
    parse_public_key(&body.public_key)?;
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    if repo::keys(&txn, ctx).await?.len() >= MAX_KEYS {
        return Err(Error::conflict(
            "quota_exceeded",
            format!("a tenant has at most {MAX_KEYS} signing keys"),
        ));
    }
    let k = repo::insert_key(
        &txn,
        ctx,
        signing_key::Model {
            id: Uuid::new_v4(),
            tenant_id: ctx.tenant_id().0,
            name,
            public_key: body.public_key.trim().to_owned(),
            created_at: Utc::now(),
        },
    )
    .await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "ota.signing_key.create",
        "signing_key",
        Some(k.id),
        serde_json::json!({"name": k.name, "public_key": k.public_key}),
    )
    .await?;
    txn.commit().await?;
    Ok(repo::key_to_api(k))
}

pub async fn delete_key(state: &AppState, ctx: &TenantCtx, actor: &Actor, id: Uuid) -> Result<()> {
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let k = repo::key(&txn, ctx, id).await?;
    repo::delete_key(&txn, ctx, id).await?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "ota.signing_key.delete",
        "signing_key",
        Some(id),
        serde_json::json!({"name": k.name}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The shared attributes that tell a device its target (`fw_*` or `sw_*`), all in one push: a
/// split push makes SDK 1.x start a download of size 0.
fn target_attributes(
    p: &package::Model,
    algorithm: ChecksumAlgorithm,
) -> serde_json::Map<String, serde_json::Value> {
    let kind = PackageKind::parse(&p.kind).unwrap_or(PackageKind::Firmware);
    let checksums: std::collections::BTreeMap<ChecksumAlgorithm, String> =
        serde_json::from_value(p.checksums.clone()).unwrap_or_default();
    let x = kind.prefix();
    let mut m = serde_json::Map::new();
    m.insert(format!("{x}_title"), p.title.clone().into());
    m.insert(format!("{x}_version"), p.version.clone().into());
    m.insert(format!("{x}_size"), p.size.into());
    m.insert(
        format!("{x}_checksum"),
        checksums
            .get(&algorithm)
            .cloned()
            .unwrap_or_default()
            .into(),
    );
    m.insert(format!("{x}_checksum_algorithm"), algorithm.as_str().into());
    m
}

/// The keys of `target_attributes`.
pub fn target_keys(kind: PackageKind) -> Vec<String> {
    let x = kind.prefix();
    ["title", "version", "size", "checksum", "checksum_algorithm"]
        .iter()
        .map(|k| format!("{x}_{k}"))
        .collect()
}

/// What the device last reported running (`current_fw_title`, `current_fw_version`).
async fn running(
    state: &AppState,
    device: DeviceId,
    kind: PackageKind,
) -> (Option<String>, Option<String>) {
    let latest = state.live.latest(device).await.unwrap_or_default();
    let text = |k: String| {
        latest
            .get(&k)
            .and_then(|v| v.value.as_str().map(str::to_owned))
    };
    let x = kind.prefix();
    (
        text(format!("current_{x}_title")),
        text(format!("current_{x}_version")),
    )
}

/// A target set in a transaction: what to tell the device once it commits.
pub struct TargetSet {
    pub target: target::Model,
    pub skipped: bool,
    device: DeviceId,
    kind: PackageKind,
    title: String,
    version: String,
    values: serde_json::Map<String, serde_json::Value>,
}

impl TargetSet {
    /// After the commit: the attributes pushed to the device (its SDK starts the download) and
    /// the step on its timeline.
    pub fn announce(&self, state: &AppState, ctx: &TenantCtx) {
        if !self.skipped {
            crate::attributes::http::push(
                state,
                &[self.device.0],
                AttributeScope::Shared,
                &self.values,
            );
        }
        let what = format!("{} {} {}", self.kind.as_str(), self.title, self.version);
        state.timeline.record_for(
            ctx.tenant_id(),
            self.device,
            crate::timeline::EventKind::Ota,
            if self.skipped {
                format!("{what} assigned: already running it, skipped")
            } else {
                format!("{what} assigned")
            },
            serde_json::json!({"package_id": self.target.package_id, "state": self.target.state}),
        );
    }
}

/// Makes `p` the device's target of its kind inside `txn` (a person's assignment or a
/// campaign's): the target row, and the shared attributes that tell the device, unless it
/// already runs the package (`SKIPPED`).
pub async fn set_target(
    state: &AppState,
    txn: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    p: &package::Model,
    algorithm: ChecksumAlgorithm,
    assigned_by: Option<Uuid>,
) -> Result<TargetSet> {
    let kind = PackageKind::parse(&p.kind).unwrap_or(PackageKind::Firmware);
    let (title, version) = running(state, device, kind).await;
    let skipped = title.as_deref() == Some(p.title.as_str())
        && version.as_deref() == Some(p.version.as_str());
    let now = Utc::now();
    let t = target::Model {
        device_id: device.0,
        kind: kind.as_str().to_owned(),
        tenant_id: ctx.tenant_id().0,
        package_id: p.id,
        state: if skipped {
            OtaState::Skipped
        } else {
            OtaState::Notified
        }
        .as_str()
        .to_owned(),
        reason: skipped.then(|| "the device already runs this version".to_owned()),
        attempts: 0,
        previous_title: title,
        previous_version: version,
        assigned_by,
        assigned_at: now,
        state_at: now,
    };
    repo::put_target(txn, ctx, t.clone()).await?;
    let values = target_attributes(p, algorithm);
    if !skipped {
        crate::attributes::set(
            txn,
            ctx,
            &[device.0],
            AttributeScope::Shared,
            &values,
            crate::telemetry::now_ms(),
        )
        .await?;
    }
    Ok(TargetSet {
        target: t,
        skipped,
        device,
        kind,
        title: p.title.clone(),
        version: p.version.clone(),
        values,
    })
}

/// `PUT /devices/{id}/ota/{kind}`: the device should run this package. The target's shared
/// attributes are written and pushed (the device's SDK starts the download); a device that
/// already runs it is `SKIPPED`.
pub async fn assign(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    device: DeviceId,
    kind: PackageKind,
    body: AssignPackage,
) -> Result<DeviceOtaTarget> {
    let algorithm = body.checksum_algorithm.unwrap_or(ChecksumAlgorithm::Sha256);
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    let d = crate::devices::repo::get(&txn, ctx, device).await?;
    let p = repo::get(&txn, ctx, body.package_id).await.map_err(|_| {
        Error::invalid(
            "unknown_package",
            "package_id",
            format!("there is no package {} in this tenant", body.package_id),
        )
    })?;
    if p.kind != kind.as_str() {
        return Err(Error::invalid(
            "wrong_kind",
            "package_id",
            format!("this is a {} package, not {}", p.kind, kind.as_str()),
        ));
    }
    if let Some(profile) = p.profile_id
        && Some(profile) != d.profile_id
    {
        return Err(Error::invalid(
            "wrong_profile",
            "package_id",
            "the package ships to another device profile",
        ));
    }
    let set = set_target(
        state,
        &txn,
        ctx,
        device,
        &p,
        algorithm,
        Some(actor.user_id.0),
    )
    .await?;
    let (t, skipped) = (set.target.clone(), set.skipped);
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "ota.assign",
        "device",
        Some(device.0),
        serde_json::json!({"kind": kind.as_str(), "package_id": p.id, "title": p.title,
                           "version": p.version, "skipped": skipped}),
    )
    .await?;
    txn.commit().await?;
    set.announce(state, ctx);
    Ok(repo::target_to_api(t, &p))
}

/// A target withdrawn in a transaction: the attributes to remove on the device once it commits.
pub struct Withdrawn {
    device: DeviceId,
    deleted: Vec<String>,
}

impl Withdrawn {
    pub fn announce(&self, state: &AppState) {
        if !self.deleted.is_empty() {
            state.sessions.deliver(
                self.device,
                crate::ingress::Delivery::Attributes(serde_json::json!({"deleted": self.deleted})),
            );
        }
    }
}

/// Removes a device's target of a kind (only if it is `package`, when given) and its shared
/// attributes inside `txn`. `None` when there was no such target.
pub async fn withdraw(
    txn: &impl ConnectionTrait,
    ctx: &TenantCtx,
    device: DeviceId,
    kind: PackageKind,
    package: Option<Uuid>,
) -> Result<Option<Withdrawn>> {
    if let Some(package) = package
        && repo::target(txn, ctx, device, kind)
            .await?
            .is_none_or(|(t, _)| t.package_id != package)
    {
        return Ok(None);
    }
    if !repo::delete_target(txn, ctx, device, kind).await? {
        return Ok(None);
    }
    let deleted =
        crate::attributes::delete(txn, ctx, device, AttributeScope::Shared, &target_keys(kind))
            .await?;
    Ok(Some(Withdrawn { device, deleted }))
}

/// `DELETE /devices/{id}/ota/{kind}`: no target any more (an update under way is canceled);
/// the target's shared attributes are removed.
pub async fn unassign(
    state: &AppState,
    ctx: &TenantCtx,
    actor: &Actor,
    device: DeviceId,
    kind: PackageKind,
) -> Result<()> {
    let txn = audit::begin(&state.db, Some(ctx.tenant_id())).await?;
    crate::devices::repo::get(&txn, ctx, device).await?;
    let withdrawn = withdraw(&txn, ctx, device, kind, None)
        .await?
        .ok_or(Error::NotFound("update target"))?;
    audit::record(
        &txn,
        Some(ctx.tenant_id()),
        actor,
        "ota.unassign",
        "device",
        Some(device.0),
        serde_json::json!({"kind": kind.as_str()}),
    )
    .await?;
    txn.commit().await?;
    withdrawn.announce(state);
    Ok(())
}
