//! Bulk import of devices from CSV, and bulk actions on a selection of devices.
//!
//! An import reads the whole file first (`parse`: the header, then per line a `Row` or an error
//! with its line and column), compares it with what the tenant has (`plan`: per row create,
//! update, unchanged or error, keeping only the differences), then applies the plan (`run`, a
//! background task that writes its progress to `import_jobs`). A dry run stops after the plan and
//! changes nothing. Applying only differences makes an import idempotent: the same file again
//! changes nothing, issues no token and bumps no attribute version. Devices created without
//! explicit credentials get generated tokens, kept with the job as a CSV until downloaded once.

pub mod bulk;
pub mod http;
pub mod model;
pub mod repo;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use sea_orm::DatabaseConnection;
use stead_api_types::{
    AttributeScope, CreateDevice, CreateGroup, ImportCounts, ImportOutcome, ImportReport,
    ImportRowReport, ImportStatus, SetCredentials, UpdateDevice,
};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{TenantCtx, tokens};
use crate::devices::model as devices;
use crate::error::{Error, Result};
use crate::ids::DeviceId;

/// Largest import file (other request bodies stay under `max_body_bytes`).
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;
/// Most data rows in one file.
pub const MAX_ROWS: usize = 100_000;
/// The runner writes its progress after this many rows or this much time, whichever is first.
const PROGRESS_ROWS: u64 = 100;
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Rows applied at once on PostgreSQL.
const ROWS_IN_FLIGHT: usize = 8;

type Values = serde_json::Map<String, serde_json::Value>;

/// The columns an import file may have.
const COLUMNS: &str = "name, label, type, profile, groups, access_token, mqtt_username, \
                       mqtt_password, mqtt_client_id, shared:<key>, server:<key>";

#[derive(Debug, Clone, PartialEq)]
enum Column {
    Name,
    Label,
    Type,
    Profile,
    Groups,
    AccessToken,
    MqttUsername,
    MqttPassword,
    MqttClientId,
    Attribute(AttributeScope, String),
}

impl Column {
    fn parse(text: &str) -> Option<Column> {
        Some(match text.to_ascii_lowercase().as_str() {
            "name" => Column::Name,
            "label" => Column::Label,
            "type" => Column::Type,
            "profile" => Column::Profile,
            "groups" => Column::Groups,
            "access_token" => Column::AccessToken,
            "mqtt_username" => Column::MqttUsername,
            "mqtt_password" => Column::MqttPassword,
            "mqtt_client_id" => Column::MqttClientId,
            _ => {
                let (prefix, key) = text.split_once(':')?;
                let scope = match prefix.trim().to_ascii_lowercase().as_str() {
                    "shared" => AttributeScope::Shared,
                    "server" => AttributeScope::Server,
                    _ => return None,
                };
                Column::Attribute(scope, key.trim().to_owned())
            }
        })
    }
}

/// A problem with the file as a whole (its header): nothing in it can be imported.
#[derive(Debug)]
pub struct FileError {
    pub column: Option<String>,
    pub detail: String,
}

impl FileError {
    fn new(column: Option<&str>, detail: impl Into<String>) -> FileError {
        FileError {
            column: column.map(str::to_owned),
            detail: detail.into(),
        }
    }
}

/// One data line of the file, checked. `None` and empty collections mean "not set".
#[derive(Debug, Clone)]
pub struct Row {
    pub line: u64,
    pub name: String,
    pub label: Option<String>,
    pub device_type: Option<String>,
    pub profile: Option<String>,
    pub groups: Vec<String>,
    pub credentials: Option<SetCredentials>,
    pub shared: Values,
    pub server: Values,
}

/// A line that cannot be imported, and why.
#[derive(Debug, Clone)]
pub struct RowError {
    pub line: u64,
    pub name: String,
    pub column: Option<String>,
    pub reason: String,
}

pub type Line = std::result::Result<Row, RowError>;

/// The CSV column a domain error's field stands for.
fn column_of_field(field: &str) -> &str {
    match field {
        "token" => "access_token",
        "username" => "mqtt_username",
        "password" => "mqtt_password",
        "client_id" => "mqtt_client_id",
        "profile_id" => "profile",
        other => other,
    }
}

/// What a row's failure says: the column at fault when there is one, and the reason.
fn failure(e: Error) -> (Option<String>, String) {
    let column = match &e {
        Error::Invalid { field, .. } => field.as_deref().map(|f| column_of_field(f).to_owned()),
        Error::Conflict {
            code: "device_name_taken",
            ..
        } => Some("name".to_owned()),
        Error::Conflict {
            code: "mqtt_username_taken",
            ..
        } => Some("mqtt_username".to_owned()),
        Error::Conflict {
            code: "group_name_taken",
            ..
        } => Some("groups".to_owned()),
        _ => None,
    };
    let reason = match e {
        Error::Db(_) | Error::Internal(_) => {
            tracing::error!(error = %e, "an import row failed");
            "internal error; it has been logged".to_owned()
        }
        other => other.to_string(),
    };
    (column, reason)
}

/// Reads a whole import file: the header, then one `Row` or `RowError` per non-empty line.
/// CPU work: run it on the blocking pool.
pub fn parse(file: &[u8]) -> std::result::Result<Vec<Line>, FileError> {
    // Spreadsheets like to start UTF-8 files with a byte-order mark.
    let file = file.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(file);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(file);
    let mut record = csv::ByteRecord::new();
    let columns = match reader.read_byte_record(&mut record) {
        Ok(true) => header(&record)?,
        Ok(false) => {
            return Err(FileError::new(
                None,
                "the file is empty: its first line names the columns (at least `name`)",
            ));
        }
        Err(e) => return Err(FileError::new(None, format!("line 1: {e}"))),
    };
    let mut lines = Vec::new();
    let mut at = Lines::default();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                if record.iter().all(|f| f.trim_ascii().is_empty()) {
                    continue;
                }
                if lines.len() == MAX_ROWS {
                    return Err(FileError::new(
                        None,
                        format!("the file has more than {MAX_ROWS} rows: split it"),
                    ));
                }
                let line = at.line_of(file, record.position());
                lines.push(row(&columns, &record, line));
            }
            Err(e) => {
                // Reading from memory, only a malformed record stops the reader.
                lines.push(Err(RowError {
                    line: at.line_of(file, e.position()),
                    name: String::new(),
                    column: None,
                    reason: e.to_string(),
                }));
                break;
            }
        }
    }
    Ok(lines)
}

/// Counts lines up to a record's start. (The csv crate's own line numbers go wrong after a
/// blank line; its byte offsets are right, but point at the blank lines a record skipped.) A line
/// ends as the csv crate ends a record: with "\n", "\r\n", or a lone "\r" (old Mac files).
#[derive(Default)]
struct Lines {
    offset: usize,
    line: u64,
}

impl Lines {
    fn line_of(&mut self, file: &[u8], position: Option<&csv::Position>) -> u64 {
        let mut start = position.map_or(0, |p| p.byte() as usize).min(file.len());
        while start < file.len() && matches!(file[start], b'\r' | b'\n') {
            start += 1;
        }
        if start >= self.offset {
            let ends = (self.offset..start).filter(|&i| {
                file[i] == b'\n' || (file[i] == b'\r' && file.get(i + 1) != Some(&b'\n'))
            });
            self.line += ends.count() as u64;
            self.offset = start;
        }
        self.line + 1
    }
}

fn header(record: &csv::ByteRecord) -> std::result::Result<Vec<Column>, FileError> {
    let mut columns = Vec::with_capacity(record.len());
    for raw in record {
        let text = std::str::from_utf8(raw)
            .map_err(|_| FileError::new(None, "line 1: the header is not valid UTF-8"))?
            .trim();
        let column = Column::parse(text).ok_or_else(|| {
            FileError::new(
                Some(text),
                format!("line 1: unknown column {text:?}; the columns are {COLUMNS}"),
            )
        })?;
        if let Column::Attribute(_, key) = &column {
            let one = Values::from_iter([(key.clone(), serde_json::Value::Null)]);
            crate::attributes::validate(&one)
                .map_err(|e| FileError::new(Some(text), format!("line 1: column {text:?}: {e}")))?;
        }
        if columns.contains(&column) {
            return Err(FileError::new(
                Some(text),
                format!("line 1: the column {text:?} appears twice"),
            ));
        }
        columns.push(column);
    }
    if !columns.contains(&Column::Name) {
        return Err(FileError::new(
            Some("name"),
            "line 1: the header has no `name` column",
        ));
    }
    Ok(columns)
}

fn row(columns: &[Column], record: &csv::ByteRecord, line: u64) -> Line {
    let name_at = columns.iter().position(|c| *c == Column::Name);
    // Kept in the job's report (JSON in PostgreSQL, which cannot hold U+0000).
    let raw_name = name_at
        .and_then(|i| record.get(i))
        .map(|f| String::from_utf8_lossy(f).trim().replace('\0', "\\u0000"))
        .unwrap_or_default();
    let fail = |column: Option<&str>, reason: String| RowError {
        line,
        name: raw_name.clone(),
        column: column.map(str::to_owned),
        reason,
    };
    let failed = |e: Error| {
        let (column, reason) = failure(e);
        fail(column.as_deref(), reason)
    };
    if record.len() != columns.len() {
        return Err(fail(
            None,
            format!(
                "{} fields, but the header names {} columns",
                record.len(),
                columns.len()
            ),
        ));
    }
    let mut cells = Vec::with_capacity(columns.len());
    for (column, raw) in columns.iter().zip(record) {
        match std::str::from_utf8(raw) {
            // Refused on both backends alike, as the devices API refuses it (SQLite would keep
            // it; PostgreSQL fails the row with an internal error).
            Ok(text) if text.contains('\0') => {
                return Err(fail(
                    Some(&title(column)),
                    "holds a NUL character (U+0000), which text may not".into(),
                ));
            }
            Ok(text) => cells.push(text.trim()),
            Err(_) => {
                return Err(fail(
                    Some(&title(column)),
                    "not valid UTF-8 (save the file as UTF-8)".into(),
                ));
            }
        }
    }
    let cell = |c: &Column| {
        columns
            .iter()
            .position(|x| x == c)
            .map(|i| cells[i])
            .filter(|v| !v.is_empty())
    };
    let owned = |c: &Column| cell(c).map(str::to_owned);
    let name = crate::devices::repo::parse_name(&raw_name).map_err(failed)?;
    let label = crate::devices::repo::parse_optional(owned(&Column::Label), "label", 256)
        .map_err(failed)?;
    let device_type =
        crate::devices::repo::parse_optional(owned(&Column::Type), "type", 64).map_err(failed)?;
    let mut groups: Vec<String> = Vec::new();
    for group in cell(&Column::Groups).unwrap_or("").split(';') {
        if group.trim().is_empty() {
            continue;
        }
        let group = crate::groups::repo::parse_name(group)
            .map_err(|e| fail(Some("groups"), format!("group {group:?}: {e}")))?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    let credentials = credentials(
        owned(&Column::AccessToken),
        owned(&Column::MqttUsername),
        owned(&Column::MqttPassword),
        owned(&Column::MqttClientId),
    )
    .map_err(failed)?;
    let (mut shared, mut server) = (Values::new(), Values::new());
    for (column, text) in columns.iter().zip(&cells) {
        if let Column::Attribute(scope, key) = column
            && !text.is_empty()
        {
            // A cell that reads as JSON is that value; anything else is a string.
            let value = serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::String((*text).to_owned()));
            if crate::text::nul_in(&value).is_some() {
                return Err(fail(
                    Some(&title(column)),
                    "holds a NUL character (U+0000), which text may not".into(),
                ));
            }
            match scope {
                AttributeScope::Shared => shared.insert(key.clone(), value),
                _ => server.insert(key.clone(), value),
            };
        }
    }
    for (scope, values) in [("shared", &shared), ("server", &server)] {
        if !values.is_empty() {
            crate::attributes::validate(values)
                .map_err(|e| fail(Some(&format!("{scope}:*")), e.to_string()))?;
        }
    }
    Ok(Row {
        line,
        name,
        label,
        device_type,
        profile: owned(&Column::Profile),
        groups,
        credentials,
        shared,
        server,
    })
}

fn title(column: &Column) -> String {
    match column {
        Column::Name => "name".into(),
        Column::Label => "label".into(),
        Column::Type => "type".into(),
        Column::Profile => "profile".into(),
        Column::Groups => "groups".into(),
        Column::AccessToken => "access_token".into(),
        Column::MqttUsername => "mqtt_username".into(),
        Column::MqttPassword => "mqtt_password".into(),
        Column::MqttClientId => "mqtt_client_id".into(),
        Column::Attribute(scope, key) => format!("{}:{key}", scope.as_str()),
    }
}

/// The explicit credentials of a row, checked as the devices API checks them.
fn credentials(
    token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
) -> Result<Option<SetCredentials>> {
    let set = match (token, username) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "invalid_credentials",
                "token",
                "give access_token or mqtt_username, not both",
            ));
        }
        (None, None) if password.is_some() || client_id.is_some() => {
            return Err(Error::invalid(
                "invalid_credentials",
                "username",
                "mqtt_password and mqtt_client_id need mqtt_username",
            ));
        }
        (None, None) => return Ok(None),
        (Some(_), None) if password.is_some() || client_id.is_some() => {
            return Err(Error::invalid(
                "invalid_credentials",
                "token",
                "an access_token goes without mqtt_password and mqtt_client_id",
            ));
        }
        (Some(token), None) => SetCredentials::AccessToken {
            token: Some(token),
            expires_at: None,
        },
        (None, Some(username)) => SetCredentials::MqttBasic {
            client_id,
            username,
            password,
            expires_at: None,
        },
    };
    crate::devices::credentials::check(&set)?;
    Ok(Some(set))
}

/// A device to create.
pub struct NewDevice {
    row: Row,
    /// `None`: the tenant's default profile.
    profile_id: Option<Uuid>,
}

/// What differs between a row and its existing device: only that is written.
pub struct Change {
    device: Uuid,
    /// Label, type or profile.
    fields: Option<UpdateDevice>,
    /// Groups (by name) the device is not in yet.
    groups: Vec<String>,
    shared: Values,
    server: Values,
    credentials: Option<SetCredentials>,
}

pub enum Action {
    Create(Box<NewDevice>),
    Update(Box<Change>),
    Unchanged,
    Error {
        column: Option<String>,
        reason: String,
    },
}

pub struct Planned {
    pub line: u64,
    pub name: String,
    pub action: Action,
}

/// What an import will do, row by row.
pub struct Plan {
    pub rows: Vec<Planned>,
    /// The tenant's groups by name (the run adds those it creates).
    groups: HashMap<String, Uuid>,
}

impl Plan {
    /// The dry run's answer.
    pub fn report(&self) -> ImportReport {
        let mut counts = ImportCounts {
            total: self.rows.len() as u64,
            processed: self.rows.len() as u64,
            ..ImportCounts::default()
        };
        let rows = self
            .rows
            .iter()
            .map(|p| {
                let (outcome, column, reason) = match &p.action {
                    Action::Create(_) => {
                        counts.created += 1;
                        (ImportOutcome::Create, None, None)
                    }
                    Action::Update(_) => {
                        counts.updated += 1;
                        (ImportOutcome::Update, None, None)
                    }
                    Action::Unchanged => {
                        counts.unchanged += 1;
                        (ImportOutcome::Unchanged, None, None)
                    }
                    Action::Error { column, reason } => {
                        counts.failed += 1;
                        (ImportOutcome::Error, column.clone(), Some(reason.clone()))
                    }
                };
                ImportRowReport {
                    line: p.line,
                    name: p.name.clone(),
                    outcome,
                    column,
                    reason,
                }
            })
            .collect();
        ImportReport { counts, rows }
    }
}

/// The keys of `wanted` whose value differs from the stored one.
fn differing(wanted: &Values, stored: Option<&Values>) -> Values {
    wanted
        .iter()
        .filter(|(k, v)| stored.and_then(|s| s.get(*k)) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What the tenant has now, for the rows of one file.
struct Current {
    devices: HashMap<String, devices::Model>,
    profiles: HashMap<String, Uuid>,
    members: HashSet<(Uuid, Uuid)>,
    shared: HashMap<Uuid, Values>,
    server: HashMap<Uuid, Values>,
    /// Token hash → the device that holds it.
    tokens: HashMap<String, String>,
    /// MQTT user name → the device that holds it.
    usernames: HashMap<String, String>,
}

impl Current {
    async fn load(db: &DatabaseConnection, ctx: &TenantCtx, rows: &[&Row]) -> Result<Current> {
        let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        let devices: HashMap<String, devices::Model> = repo::devices_named(db, ctx, &names)
            .await?
            .into_iter()
            .map(|d| (d.name.clone(), d))
            .collect();
        let mut profiles = HashMap::new();
        for name in rows.iter().filter_map(|r| r.profile.as_ref()) {
            if !profiles.contains_key(name)
                && let Some(p) = crate::profiles::repo::find_by_name(db, ctx, name).await?
            {
                profiles.insert(name.clone(), p.id);
            }
        }
        // The existing devices whose rows set something of a kind, for each kind.
        let ids_where = |wants: fn(&Row) -> bool| -> Vec<Uuid> {
            rows.iter()
                .filter(|r| wants(r))
                .filter_map(|r| devices.get(&r.name).map(|d| d.id))
                .collect()
        };
        let members =
            crate::groups::repo::memberships(db, ctx, &ids_where(|r| !r.groups.is_empty()))
                .await?
                .into_iter()
                .collect();
        let shared = crate::attributes::values_of(
            db,
            ctx,
            &ids_where(|r| !r.shared.is_empty()),
            AttributeScope::Shared,
        )
        .await?;
        let server = crate::attributes::values_of(
            db,
            ctx,
            &ids_where(|r| !r.server.is_empty()),
            AttributeScope::Server,
        )
        .await?;
        let (mut hashes, mut usernames) = (Vec::new(), Vec::new());
        for r in rows {
            match &r.credentials {
                Some(SetCredentials::AccessToken { token: Some(t), .. }) => {
                    hashes.push(tokens::hash_token(t))
                }
                Some(SetCredentials::MqttBasic { username, .. }) => {
                    usernames.push(username.clone())
                }
                _ => {}
            }
        }
        Ok(Current {
            profiles,
            members,
            shared,
            server,
            tokens: repo::credential_owners(db, ctx, devices::Column::TokenHash, &hashes).await?,
            usernames: repo::credential_owners(db, ctx, devices::Column::MqttUsername, &usernames)
                .await?,
            devices,
        })
    }

    /// Whether another of the tenant's devices holds the row's explicit credentials.
    fn credentials_clash(&self, row: &Row) -> Option<Action> {
        let (owner, column, what) = match &row.credentials {
            Some(SetCredentials::AccessToken { token: Some(t), .. }) => (
                self.tokens.get(&tokens::hash_token(t)),
                "access_token",
                "access token",
            ),
            Some(SetCredentials::MqttBasic { username, .. }) => (
                self.usernames.get(username),
                "mqtt_username",
                "MQTT user name",
            ),
            _ => return None,
        };
        let owner = owner.filter(|o| **o != row.name)?;
        Some(Action::Error {
            column: Some(column.into()),
            reason: format!("the device {owner:?} already uses this {what}"),
        })
    }

    fn decide(&self, groups: &HashMap<String, Uuid>, row: Row) -> Action {
        let profile_id = match &row.profile {
            Some(p) => match self.profiles.get(p) {
                Some(id) => Some(*id),
                None => {
                    return Action::Error {
                        column: Some("profile".into()),
                        reason: format!(
                            "no profile named {p:?} in this tenant (an import does not create profiles)"
                        ),
                    };
                }
            },
            None => None,
        };
        if let Some(clash) = self.credentials_clash(&row) {
            return clash;
        }
        let needs_password = || Action::Error {
            column: Some("mqtt_password".into()),
            reason: "new MQTT credentials need mqtt_password".into(),
        };
        let Some(d) = self.devices.get(&row.name) else {
            if matches!(
                row.credentials,
                Some(SetCredentials::MqttBasic { password: None, .. })
            ) {
                return needs_password();
            }
            return Action::Create(Box::new(NewDevice { row, profile_id }));
        };
        let mut fields = UpdateDevice::default();
        if row.label.is_some() && d.label != row.label {
            fields.label = Some(row.label.clone());
        }
        if row.device_type.is_some() && d.device_type != row.device_type {
            fields.device_type = Some(row.device_type.clone());
        }
        if profile_id.is_some() && d.profile_id != profile_id {
            fields.profile_id = profile_id;
        }
        let fields_change =
            fields.label.is_some() || fields.device_type.is_some() || fields.profile_id.is_some();
        let credentials = match row.credentials {
            Some(SetCredentials::AccessToken { token: Some(t), .. })
                if d.credentials_type == "access_token"
                    && d.token_hash == tokens::hash_token(&t) =>
            {
                None
            }
            // The password is not compared (only its hash is stored): same user name and client
            // id, same credentials.
            Some(SetCredentials::MqttBasic {
                ref username,
                ref client_id,
                ..
            }) if d.credentials_type == "mqtt_basic"
                && d.mqtt_username.as_ref() == Some(username)
                && d.mqtt_client_id == *client_id =>
            {
                None
            }
            Some(SetCredentials::MqttBasic { password: None, .. }) => return needs_password(),
            other => other,
        };
        let change = Change {
            device: d.id,
            fields: fields_change.then_some(fields),
            groups: row
                .groups
                .iter()
                .filter(|g| {
                    groups
                        .get(*g)
                        .is_none_or(|id| !self.members.contains(&(d.id, *id)))
                })
                .cloned()
                .collect(),
            shared: differing(&row.shared, self.shared.get(&d.id)),
            server: differing(&row.server, self.server.get(&d.id)),
            credentials,
        };
        if change.fields.is_none()
            && change.groups.is_empty()
            && change.shared.is_empty()
            && change.server.is_empty()
            && change.credentials.is_none()
        {
            Action::Unchanged
        } else {
            Action::Update(Box::new(change))
        }
    }
}

/// Compares the file with what the tenant has. Reads only.
pub async fn plan(db: &DatabaseConnection, ctx: &TenantCtx, lines: Vec<Line>) -> Result<Plan> {
    // Within the file, a device, token or MQTT user name a second time is an error there.
    let mut first: HashMap<(&'static str, String), u64> = HashMap::new();
    let mut checked: Vec<Line> = Vec::with_capacity(lines.len());
    for line in lines {
        let Ok(row) = line else {
            checked.push(line);
            continue;
        };
        let mut keys = vec![("name", row.name.clone())];
        match &row.credentials {
            Some(SetCredentials::AccessToken { token: Some(t), .. }) => {
                keys.push(("access_token", t.clone()))
            }
            Some(SetCredentials::MqttBasic { username, .. }) => {
                keys.push(("mqtt_username", username.clone()))
            }
            _ => {}
        }
        let repeated = keys.iter().find_map(|k| first.get(k).map(|l| (k.0, *l)));
        match repeated {
            Some((column, at)) => checked.push(Err(RowError {
                line: row.line,
                name: row.name,
                column: Some(column.into()),
                reason: format!("the same {column} as line {at}"),
            })),
            None => {
                for k in keys {
                    first.insert(k, row.line);
                }
                checked.push(Ok(row));
            }
        }
    }
    let valid: Vec<&Row> = checked.iter().filter_map(|l| l.as_ref().ok()).collect();
    let current = Current::load(db, ctx, &valid).await?;
    let groups: HashMap<String, Uuid> = crate::groups::repo::list(db, ctx)
        .await?
        .into_iter()
        .map(|g| (g.name, g.id))
        .collect();
    let rows = checked
        .into_iter()
        .map(|line| match line {
            Ok(row) => Planned {
                line: row.line,
                name: row.name.clone(),
                action: current.decide(&groups, row),
            },
            Err(e) => Planned {
                line: e.line,
                name: e.name,
                action: Action::Error {
                    column: e.column,
                    reason: e.reason,
                },
            },
        })
        .collect();
    Ok(Plan { rows, groups })
}

/// At start-up: marks failed the jobs whose runner died with its process. (A job that another
/// live node runs keeps writing its heartbeat and is left alone.)
pub async fn fail_abandoned(db: &DatabaseConnection) {
    match repo::fail_abandoned(db, None).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(jobs = n, "marked abandoned import jobs failed"),
        Err(e) => tracing::warn!(error = %e, "looking for abandoned import jobs failed"),
    }
}

/// Runs an import job to its end, writing its progress as it goes.
pub async fn run(state: AppState, ctx: TenantCtx, job: Uuid, lines: Vec<Line>) {
    let mut progress = repo::Progress::default();
    progress.counts.total = lines.len() as u64;
    let (status, reason) = match execute(&state, &ctx, job, lines, &mut progress).await {
        Ok(true) => (ImportStatus::Finished, None),
        // Taken for dead by another node: its status is no longer ours to write.
        Ok(false) => return,
        Err(e) => {
            tracing::error!(error = %e, %job, "an import job failed");
            (
                ImportStatus::Failed,
                Some("the import stopped on an internal error; it has been logged"),
            )
        }
    };
    if let Err(e) = repo::finish(
        crate::auth::System::worker(),
        &state.db,
        job,
        &progress,
        status,
        reason,
    )
    .await
    {
        tracing::error!(error = %e, %job, "recording the end of an import job failed");
    }
}

/// Applies the plan; false when the job was taken for dead meanwhile. On PostgreSQL several rows
/// are in flight at once (their commits share the disk's flushes); SQLite has one writer anyway.
async fn execute(
    state: &AppState,
    ctx: &TenantCtx,
    job: Uuid,
    lines: Vec<Line>,
    progress: &mut repo::Progress,
) -> Result<bool> {
    let Plan { rows, mut groups } = plan(&state.db, ctx, lines).await?;
    // Every group the file names exists before the rows run, so they need not wait for each other.
    let mut wanted: Vec<String> = Vec::new();
    for planned in &rows {
        match &planned.action {
            Action::Create(new) => wanted.extend(new.row.groups.iter().cloned()),
            Action::Update(change) => wanted.extend(change.groups.iter().cloned()),
            _ => {}
        }
    }
    ensure_groups(&state.db, ctx, &mut groups, wanted).await?;
    let in_flight = match state.db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => ROWS_IN_FLIGHT,
        _ => 1,
    };
    let groups = &groups;
    let mut done = futures_util::stream::iter(rows)
        .map(|p| async move { (p.line, p.name, apply(state, ctx, groups, p.action).await) })
        .buffered(in_flight);
    let (mut written, mut unwritten) = (Instant::now(), 0);
    while let Some((line, name, (token, outcome))) = done.next().await {
        if let Some(token) = token {
            progress.credential(&name, &token);
        }
        match outcome {
            Ok(ImportOutcome::Create) => progress.counts.created += 1,
            Ok(ImportOutcome::Update) => progress.counts.updated += 1,
            Ok(_) => progress.counts.unchanged += 1,
            Err((column, reason)) => progress.error(ImportRowReport {
                line,
                name,
                outcome: ImportOutcome::Error,
                column,
                reason: Some(reason),
            }),
        }
        progress.counts.processed += 1;
        unwritten += 1;
        if unwritten >= PROGRESS_ROWS || written.elapsed() >= PROGRESS_EVERY {
            if !repo::save_progress(crate::auth::System::worker(), &state.db, job, progress).await?
            {
                return Ok(false);
            }
            (written, unwritten) = (Instant::now(), 0);
        }
    }
    Ok(true)
}

/// One row's outcome, and the token generated for it (kept even if a later step failed).
async fn apply(
    state: &AppState,
    ctx: &TenantCtx,
    groups: &HashMap<String, Uuid>,
    action: Action,
) -> (
    Option<String>,
    std::result::Result<ImportOutcome, (Option<String>, String)>,
) {
    match action {
        Action::Unchanged => (None, Ok(ImportOutcome::Unchanged)),
        Action::Error { column, reason } => (None, Err((column, reason))),
        Action::Create(new) => {
            let (token, done) = create(state, ctx, groups, *new).await;
            (token, done.map(|()| ImportOutcome::Create).map_err(failure))
        }
        Action::Update(change) => {
            let done = update(state, ctx, groups, *change).await;
            (None, done.map(|()| ImportOutcome::Update).map_err(failure))
        }
    }
}

/// Creates the groups the tenant does not have yet.
async fn ensure_groups(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    known: &mut HashMap<String, Uuid>,
    names: Vec<String>,
) -> Result<()> {
    for name in names {
        if known.contains_key(&name) {
            continue;
        }
        let body = CreateGroup {
            name: name.clone(),
            description: None,
        };
        let id = match crate::groups::repo::create(db, ctx, body).await {
            Ok(g) => g.id,
            // Someone created it since the plan was made.
            Err(Error::Conflict { .. }) => {
                crate::groups::repo::find_by_name(db, ctx, &name)
                    .await?
                    .ok_or(Error::NotFound("group"))?
                    .id
            }
            Err(e) => return Err(e),
        };
        known.insert(name, id);
    }
    Ok(())
}

fn group_ids(groups: &HashMap<String, Uuid>, names: &[String]) -> Result<Vec<Uuid>> {
    names
        .iter()
        .map(|n| groups.get(n).copied().ok_or(Error::NotFound("group")))
        .collect()
}

/// Sets a row's attributes; shared ones are pushed to an existing device (a device created a
/// moment ago has no session to push to).
async fn set_attributes(
    state: &AppState,
    ctx: &TenantCtx,
    device: Uuid,
    shared: &Values,
    server: &Values,
    created: bool,
) -> Result<()> {
    for (scope, values) in [
        (AttributeScope::Shared, shared),
        (AttributeScope::Server, server),
    ] {
        if values.is_empty() {
            continue;
        }
        if created {
            let now = crate::telemetry::now_ms();
            crate::attributes::set(&state.db, ctx, &[device], scope, values, now).await?;
        } else {
            crate::attributes::http::set_and_push(state, ctx, &[device], scope, values).await?;
        }
    }
    Ok(())
}

async fn create(
    state: &AppState,
    ctx: &TenantCtx,
    groups: &HashMap<String, Uuid>,
    new: NewDevice,
) -> (Option<String>, Result<()>) {
    let row = new.row;
    let group_ids = match group_ids(groups, &row.groups) {
        Ok(ids) => ids,
        Err(e) => return (None, Err(e)),
    };
    let generated = row.credentials.is_none();
    let body = CreateDevice {
        name: row.name.clone(),
        label: row.label,
        device_type: row.device_type,
        metadata: None,
        profile_id: new.profile_id,
        groups: Some(group_ids),
        credentials: row.credentials,
        gateway: false,
        gateway_id: None,
    };
    let (device, shown) = match crate::devices::repo::create(
        &state.db,
        ctx,
        &crate::tenants::quotas::Defaults::of(&state.config),
        body,
    )
    .await
    {
        Ok(created) => created,
        Err(e) => return (None, Err(e)),
    };
    let token = shown.access_token.filter(|_| generated);
    let done = set_attributes(state, ctx, device.id, &row.shared, &row.server, true).await;
    (token, done)
}

async fn update(
    state: &AppState,
    ctx: &TenantCtx,
    groups: &HashMap<String, Uuid>,
    change: Change,
) -> Result<()> {
    let id = DeviceId(change.device);
    if let Some(fields) = change.fields {
        crate::devices::repo::update(&state.db, ctx, id, fields).await?;
    }
    for group in group_ids(groups, &change.groups)? {
        crate::groups::repo::add(&state.db, ctx, group, &[id.0]).await?;
    }
    set_attributes(state, ctx, id.0, &change.shared, &change.server, false).await?;
    if let Some(set) = change.credentials {
        crate::devices::repo::set_credentials(&state.db, ctx, id, set).await?;
        // The old credentials stop working now, cached or connected.
        state.sessions.revoke_device(id);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
