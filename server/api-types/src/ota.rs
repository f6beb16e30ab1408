//! Over-the-air updates: firmware and software packages, the tenant's signing keys.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a package updates: the device's firmware (`fw_*` attributes, `v2/fw/…`) or its software
/// (`sw_*`, `v2/sw/…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PackageKind {
    Firmware,
    Software,
}

impl PackageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Firmware => "firmware",
            PackageKind::Software => "software",
        }
    }

    pub fn parse(s: &str) -> Option<PackageKind> {
        match s {
            "firmware" => Some(PackageKind::Firmware),
            "software" => Some(PackageKind::Software),
            _ => None,
        }
    }

    /// The prefix of the device protocol's attributes and topics: `fw` or `sw`.
    pub fn prefix(self) -> &'static str {
        match self {
            PackageKind::Firmware => "fw",
            PackageKind::Software => "sw",
        }
    }
}

/// The checksum algorithms ThingsBoard's device SDKs verify, by their protocol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ChecksumAlgorithm {
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA384")]
    Sha384,
    #[serde(rename = "SHA512")]
    Sha512,
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "CRC32")]
    Crc32,
    #[serde(rename = "MURMUR3_32")]
    Murmur3_32,
    #[serde(rename = "MURMUR3_128")]
    Murmur3_128,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 7] = [
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha384,
        ChecksumAlgorithm::Sha512,
        ChecksumAlgorithm::Md5,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Murmur3_32,
        ChecksumAlgorithm::Murmur3_128,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "SHA256",
            ChecksumAlgorithm::Sha384 => "SHA384",
            ChecksumAlgorithm::Sha512 => "SHA512",
            ChecksumAlgorithm::Md5 => "MD5",
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Murmur3_32 => "MURMUR3_32",
            ChecksumAlgorithm::Murmur3_128 => "MURMUR3_128",
        }
    }

    /// By protocol name, in any case (`sha256`, `SHA256`).
    pub fn parse(s: &str) -> Option<ChecksumAlgorithm> {
        ChecksumAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// A package: an image with its title and version, checksums and where it may go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Package {
    pub id: Uuid,
    pub kind: PackageKind,
    pub title: String,
    pub version: String,
    pub description: String,
    /// The device profile it ships to; `None`: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<Uuid>,
    /// Bytes.
    pub size: u64,
    /// Lowercase hex digests as the device SDKs verify them (CRC32 and MURMUR3 as the integer's
    /// little-endian bytes), by algorithm.
    pub checksums: BTreeMap<ChecksumAlgorithm, String>,
    /// The signing key whose Ed25519 signature was checked on upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// The query of `POST /ota/packages`, whose body is the image itself
/// (`application/octet-stream`, streamed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct UploadPackage {
    pub kind: PackageKind,
    /// 1–64 characters: what the device compares with its `current_fw_title`.
    pub title: String,
    /// 1–64 characters, no spaces.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<Uuid>,
    /// The SHA-256 the uploader expects (hex); a mismatch refuses the upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// An Ed25519 signature (base64) of the image's SHA-256 digest (its 32 bytes), by one of the
    /// tenant's signing keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Query of `GET /ota/packages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct PackageQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PackageKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<Uuid>,
}

/// A public key that signs the tenant's packages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigningKey {
    pub id: Uuid,
    pub name: String,
    /// The Ed25519 public key, base64 of its 32 bytes.
    pub public_key: String,
    pub created_at: DateTime<Utc>,
}

/// `POST /ota/signing-keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSigningKey {
    pub name: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
}

/// Where a device's update stands. The device reports `DOWNLOADING` … `UPDATED` or `FAILED` in
/// its `fw_state` (`sw_state`) telemetry; the platform sets the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OtaState {
    /// Waiting for its turn (a campaign's wave or window).
    Queued,
    /// The target was pushed to the device (the `fw_*` shared attributes).
    Notified,
    Downloading,
    Downloaded,
    Verified,
    Updating,
    Updated,
    /// Updated; its health is watched before it counts as succeeded.
    VerifyingHealth,
    Succeeded,
    Failed,
    /// A step took longer than allowed.
    TimedOut,
    Canceled,
    /// Already on the target when it was set.
    Skipped,
    RolledBack,
}

impl OtaState {
    pub const ALL: [OtaState; 14] = [
        OtaState::Queued,
        OtaState::Notified,
        OtaState::Downloading,
        OtaState::Downloaded,
        OtaState::Verified,
        OtaState::Updating,
        OtaState::Updated,
        OtaState::VerifyingHealth,
        OtaState::Succeeded,
        OtaState::Failed,
        OtaState::TimedOut,
        OtaState::Canceled,
        OtaState::Skipped,
        OtaState::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OtaState::Queued => "QUEUED",
            OtaState::Notified => "NOTIFIED",
            OtaState::Downloading => "DOWNLOADING",
            OtaState::Downloaded => "DOWNLOADED",
            OtaState::Verified => "VERIFIED",
            OtaState::Updating => "UPDATING",
            OtaState::Updated => "UPDATED",
            OtaState::VerifyingHealth => "VERIFYING_HEALTH",
            OtaState::Succeeded => "SUCCEEDED",
            OtaState::Failed => "FAILED",
            OtaState::TimedOut => "TIMED_OUT",
            OtaState::Canceled => "CANCELED",
            OtaState::Skipped => "SKIPPED",
            OtaState::RolledBack => "ROLLED_BACK",
        }
    }

    pub fn parse(s: &str) -> Option<OtaState> {
        OtaState::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the update is over (nothing more happens without a new target).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OtaState::Updated
                | OtaState::Succeeded
                | OtaState::Failed
                | OtaState::TimedOut
                | OtaState::Canceled
                | OtaState::Skipped
                | OtaState::RolledBack
        )
    }
}

/// A device's target package of one kind and where its update stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceOtaTarget {
    pub device_id: Uuid,
    pub kind: PackageKind,
    pub package_id: Uuid,
    pub title: String,
    pub version: String,
    pub state: OtaState,
    /// Why it failed or timed out (the device's `fw_error`, or the platform's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Downloads that ended in `FAILED`.
    pub attempts: u32,
    /// What the device ran when the target was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    pub assigned_at: DateTime<Utc>,
    pub state_at: DateTime<Utc>,
}

/// `PUT /devices/{id}/ota/{kind}`: the package the device should run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AssignPackage {
    pub package_id: Uuid,
    /// The checksum the device is given to verify (default `SHA256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
}

/// How many devices report running one title and version (`GET /ota/versions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionCount {
    pub title: String,
    pub version: String,
    pub devices: u64,
}

/// Query of `GET /ota/versions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    pub kind: PackageKind,
}

// ---------------------------------------------------------------------------------------------
// Campaigns

/// Where a campaign stands. `draft` until someone with `ota.approve` starts it; `running` (before
/// its start time it waits); `paused` by a person or by its auto-stop; then `completed`,
/// `aborted` (its auto-stop) or `canceled` (a person).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Running,
    Paused,
    Completed,
    Aborted,
    Canceled,
}

impl CampaignStatus {
    pub const ALL: [CampaignStatus; 6] = [
        CampaignStatus::Draft,
        CampaignStatus::Running,
        CampaignStatus::Paused,
        CampaignStatus::Completed,
        CampaignStatus::Aborted,
        CampaignStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Running => "running",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Completed => "completed",
            CampaignStatus::Aborted => "aborted",
            CampaignStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<CampaignStatus> {
        CampaignStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Nothing more happens.
    pub fn is_over(self) -> bool {
        matches!(
            self,
            CampaignStatus::Completed | CampaignStatus::Aborted | CampaignStatus::Canceled
        )
    }
}

/// Which devices a campaign updates: members of any of the groups, devices of the profile, and
/// the devices named (at least one of the three; together, their union).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CampaignTarget {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_ids: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<Uuid>,
    /// Devices that match later (joining a group) are updated too; otherwise the target is the
    /// devices that match when the campaign starts.
    #[serde(default)]
    pub dynamic: bool,
}

/// How fast a campaign goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rollout {
    /// Cumulative shares of the target, e.g. `[1, 10, 50, 100]`: a wave starts when the one
    /// before it is over and the gate holds.
    Waves { percents: Vec<u8> },
    /// `per_minute` devices a minute, times `growth` after every `grow_after` successes.
    Rate {
        per_minute: u32,
        #[serde(default = "one")]
        growth: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grow_after: Option<u32>,
    },
}

fn one() -> f64 {
    1.0
}

/// Between waves: at least `min_success_percent` of the devices done so far succeeded, over at
/// least `min_devices` of them (or all of them, when fewer are done).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CampaignGate {
    pub min_success_percent: u8,
    #[serde(default = "one_device")]
    pub min_devices: u32,
}

fn one_device() -> u32 {
    1
}

/// A device counts as succeeded only when, for `secs` after it reported `UPDATED`, it stays
/// connected and sends telemetry again, raises no alarm at or above `alarm_severity`, and
/// reconnects at most `max_reconnects` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthGate {
    pub secs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_severity: Option<crate::AlarmSeverity>,
    #[serde(default = "two")]
    pub max_reconnects: u32,
}

fn two() -> u32 {
    2
}

/// What the auto-stop does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StopAction {
    /// No new devices until a person resumes it.
    Pause,
    /// Over: devices waiting are canceled.
    Abort,
}

/// More than `max_failure_percent` of the devices done failed, once at least `min_devices` are
/// done: the campaign pauses or aborts, its people are told, and optionally the devices that
/// took the new package are given their previous one again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AutoStop {
    pub max_failure_percent: u8,
    #[serde(default = "one_device")]
    pub min_devices: u32,
    pub action: StopAction,
    #[serde(default)]
    pub rollback: bool,
}

/// `POST /ota/campaigns`: a campaign, made as a draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// 1–100 characters.
    pub name: String,
    pub package_id: Uuid,
    pub target: CampaignTarget,
    /// Not before this time (default: when it is started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,
    /// Devices are notified only within this window (days, hours, time zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::AlarmSchedule>,
    pub rollout: Rollout,
    /// Devices being updated at once, at most (1–10,000).
    pub max_in_flight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<CampaignGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_stop: Option<AutoStop>,
    /// A device that fails is tried again this many times (0–10)…
    #[serde(default)]
    pub max_retries: u32,
    /// …after this many seconds, doubled each time.
    #[serde(default = "minute")]
    pub retry_backoff_secs: u32,
    /// Starting it needs a second person: someone other than its author with `ota.approve`.
    #[serde(default)]
    pub four_eyes: bool,
}

fn minute() -> u32 {
    60
}

/// A campaign with where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Campaign {
    pub id: Uuid,
    /// As it was made.
    pub spec: CampaignSpec,
    pub kind: PackageKind,
    pub title: String,
    pub version: String,
    pub status: CampaignStatus,
    /// Why it paused, aborted or was canceled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The wave under way (from 1), with waves.
    pub wave: u32,
    /// Devices in the campaign so far.
    pub devices: u64,
    /// Devices per state (states with none left out).
    pub counts: BTreeMap<OtaState, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// Query of `GET /ota/campaigns`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct CampaignQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CampaignStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_page: Option<u64>,
}

/// One step of a device in a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignStep {
    pub state: OtaState,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A device in a campaign: its execution state, why, and every step with its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignDevice {
    pub device_id: Uuid,
    pub device_name: String,
    pub state: OtaState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Times it was notified (retries included).
    pub attempts: u32,
    pub state_at: DateTime<Utc>,
    pub history: Vec<CampaignStep>,
}

/// Query of `GET /ota/campaigns/{id}/devices`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct CampaignDeviceQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<OtaState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_page: Option<u64>,
}

/// The devices per state at one time (a campaign's progress chart: one a minute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignProgress {
    pub at: DateTime<Utc>,
    pub counts: BTreeMap<OtaState, u64>,
}

/// `POST /ota/campaigns/{id}/pause` and `/cancel`: why, for the record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CampaignAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /ota/campaigns/target-count`: how many devices a target matches now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetCount {
    pub devices: u64,
}
