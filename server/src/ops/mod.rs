//! Operator commands beside `serve`: `stead backup` (an online copy of the embedded database)
//! and `stead doctor` (a deployment's configuration and services checked, in words). They use
//! the same configuration as `serve`; `main.rs` only parses their arguments. `audit` verifies the
//! audit log's hash chains (`stead admin verify-audit`).

pub mod audit;
pub mod backup;
pub mod doctor;

/// The file of an SQLite database URL (`sqlite://path?…` or `sqlite:path`), or `None` for
/// another backend or an in-memory database.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| path.into())
}

/// A PostgreSQL URL with its password removed (from the user info and from a `password=`
/// parameter), safe to print: `psql` and `pg_dump` take it from `PGPASSWORD` or `~/.pgpass`.
pub fn url_without_password(url: &str) -> String {
    let (main, query) = url.split_once('?').unwrap_or((url, ""));
    // The last '@' ends the user info even when an unencoded password holds '@' or '/'.
    let main = match main.split_once("://") {
        Some((scheme, rest)) => match rest.rfind('@') {
            Some(at) => {
                let user = rest[..at].split(':').next().unwrap_or_default();
                format!("{scheme}://{user}@{}", &rest[at + 1..])
            }
            None => main.to_owned(),
        },
        None => main.to_owned(),
    };
    let query: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.to_ascii_lowercase().starts_with("password="))
        .collect();
    if query.is_empty() {
        main
    } else {
        format!("{main}?{}", query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_found_in_both_url_forms() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/stead/stead.db?mode=rwc"),
            Some("/var/lib/stead/stead.db".into())
        );
        assert_eq!(sqlite_file("sqlite:data/x.db"), Some("data/x.db".into()));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }

    #[test]
    fn passwords_are_removed_from_postgres_urls() {
        assert_eq!(
            url_without_password(
                "postgres://stead:s3cr%40t@db.internal:5432/stead?sslmode=require"
            ),
            "postgres://stead@db.internal:5432/stead?sslmode=require"
        );
        assert_eq!(
            url_without_password("postgres://db.internal/stead"),
            "postgres://db.internal/stead"
        );
        // A password holding '@' or '/', or given as a parameter.
        assert_eq!(
            url_without_password("postgresql://u:p@s/s@h/d"),
            "postgresql://u@h/d"
        );
        assert_eq!(
            url_without_password("postgres://h/d?password=x&sslmode=disable"),
            "postgres://h/d?sslmode=disable"
        );
    }
}
