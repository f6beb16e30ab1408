//! People: e-mail, name, password (argon2id), one built-in role, and their tenant (none for the
//! platform admin). Tenant admins manage their own tenant's people.

pub mod http;
pub mod model;
pub mod repo;

use crate::secret::Secret;

/// A syntactically valid, normalised (trimmed, lower-case) e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(char::is_whitespace)
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            });
        if valid {
            Ok(Email(email))
        } else {
            Err(format!("{:?} is not a valid e-mail address", raw.trim()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the policy: 10 to 1024 characters.
pub struct Password(Secret);

impl Password {
    pub fn parse(raw: &str) -> Result<Password, String> {
        let n = raw.chars().count();
        if n < 10 {
            return Err("a password needs at least 10 characters".into());
        }
        if n > 1024 {
            return Err("a password has at most 1024 characters".into());
        }
        Ok(Password(Secret::new(raw)))
    }

    /// A random password for generated accounts: 20 characters, about 119 bits.
    pub fn generate() -> Password {
        let token = crate::auth::tokens::random_token();
        Password(Secret::new(&token[..20]))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_policy() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("long enough password").is_ok());
        assert_eq!(Password::generate().expose().len(), 20);
    }
}
