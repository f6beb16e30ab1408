//! The mechanics of two-factor sign-in: TOTP codes (RFC 6238: SHA-1, 6 digits, 30-second steps,
//! one step of clock skew either way), recovery codes, and the sealing of the stored secrets.
//!
//! A TOTP secret must be readable to check a code, so it cannot be hashed: it is sealed with
//! AES-256-GCM under a key derived from the server's signing secret (`STEAD_JWT_SECRET`, or the
//! one kept in the database), so a copy of the `users` table alone does not yield codes.
//! Recovery codes have 80 random bits each and are stored as SHA-256, like the other tokens.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use totp_rs::{Algorithm, TOTP};

pub const STEP_SECS: u64 = 30;
const ISSUER: &str = "Stead";
pub const RECOVERY_CODES: usize = 10;

/// Seals and opens stored TOTP secrets.
pub struct Sealer(LessSafeKey);

impl Sealer {
    /// The key is SHA-256 of a fixed label and the signing secret: a separate key, not the
    /// signing key itself.
    pub fn new(server_secret: &[u8]) -> anyhow::Result<Sealer> {
        let mut h = Sha256::new();
        h.update(b"stead totp seal v1\0");
        h.update(server_secret);
        let key = UnboundKey::new(&AES_256_GCM, &h.finalize())
            .map_err(|_| anyhow::anyhow!("the TOTP sealing key is not 32 bytes"))?;
        Ok(Sealer(LessSafeKey::new(key)))
    }

    /// `base64(nonce || ciphertext || tag)`; the user's id is bound in as associated data, so a
    /// sealed secret copied to another account does not open.
    pub fn seal(&self, user: uuid::Uuid, secret: &[u8]) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut data = secret.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(user.as_bytes()),
                &mut data,
            )
            .map_err(|_| anyhow::anyhow!("sealing a TOTP secret failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(STANDARD_NO_PAD.encode(out))
    }

    pub fn open(&self, user: uuid::Uuid, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let raw = STANDARD_NO_PAD.decode(sealed.trim())?;
        anyhow::ensure!(raw.len() > NONCE_LEN, "a sealed TOTP secret is too short");
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let mut data = data.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("a sealed TOTP secret has a bad nonce"))?;
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(user.as_bytes()), &mut data)
            .map_err(|_| {
                anyhow::anyhow!(
                    "a TOTP secret does not open: was the server's signing secret (STEAD_JWT_SECRET) changed?"
                )
            })?;
        Ok(plain.to_vec())
    }
}

/// 160 random bits, as RFC 4226 recommends.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 20];
    rand::rng().fill_bytes(&mut secret);
    secret
}

fn totp(secret: &[u8], account: &str) -> anyhow::Result<TOTP> {
    // The account name may not hold a colon (it separates issuer and account in the label).
    let account = account.replace(':', "_");
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECS,
        secret.to_vec(),
        Some(ISSUER.into()),
        account,
    )
    .map_err(|e| anyhow::anyhow!("TOTP parameters: {e}"))
}

/// What an authenticator app needs: the base32 secret, the `otpauth://` URL and its QR code.
pub fn provisioning(secret: &[u8], account: &str) -> anyhow::Result<(String, String, String)> {
    let t = totp(secret, account)?;
    let url = t.get_url();
    let qr = qrcode::QrCode::new(url.as_bytes())?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Ok((t.get_secret_base32(), url, qr))
}

/// The time step a code is right for (within one step of `now`, either way), if any. The caller
/// refuses a step at or before the last one it accepted, so a code works once.
pub fn matching_step(secret: &[u8], code: &str, now_secs: u64) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "x").ok()?;
    let now_step = now_secs / STEP_SECS;
    // Newest first, so that a code right for two windows counts as the later one.
    [now_step + 1, now_step, now_step.saturating_sub(1)]
        .into_iter()
        .find(|step| {
            let expected = t.generate(step * STEP_SECS);
            bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
        })
}

/// Ten recovery codes (`xxxx-xxxx-xxxx-xxxx`, lower-case base32: 80 bits each), and the hashes
/// to store.
pub fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 16];
            rand::rng().fill_bytes(&mut bytes);
            let chars: Vec<char> = bytes
                .iter()
                .map(|b| ALPHABET[(*b & 31) as usize] as char)
                .collect();
            chars
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect();
    let hashes = codes.iter().map(|c| hash_recovery_code(c)).collect();
    (codes, hashes)
}

/// Recovery codes are compared without case, spaces or dashes.
pub fn hash_recovery_code(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    super::tokens::hash_token(&normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_key() {
        let sealer = Sealer::new(b"a server secret of at least 32 bytes!!").unwrap();
        let user = uuid::Uuid::new_v4();
        let secret = new_secret();
        let sealed = sealer.seal(user, &secret).unwrap();
        assert_eq!(sealer.open(user, &sealed).unwrap(), secret);
        assert!(sealer.open(uuid::Uuid::new_v4(), &sealed).is_err());
        let other = Sealer::new(b"another server secret of 32 bytes!!!!").unwrap();
        assert!(other.open(user, &sealed).is_err());
        assert_ne!(
            sealer.seal(user, &secret).unwrap(),
            sealed,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn codes_match_their_step_and_its_neighbours_only() {
        // RFC 6238 appendix B's SHA-1 secret: at T = 59 s the 8-digit code is 94287082.
        let secret = b"12345678901234567890";
        assert_eq!(matching_step(secret, "287082", 59), Some(1));
        assert_eq!(matching_step(secret, "287 082", 59), Some(1));
        assert_eq!(
            matching_step(secret, "287082", 59 + 30),
            Some(1),
            "one step late"
        );
        assert_eq!(
            matching_step(secret, "287082", 59 + 60),
            None,
            "two steps late"
        );
        assert_eq!(matching_step(secret, "287083", 59), None);
        assert_eq!(matching_step(secret, "28708", 59), None);
        assert_eq!(matching_step(secret, "abcdef", 59), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_loosely() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(codes[0].len(), 19);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        assert_eq!(hash_recovery_code(&codes[0].to_uppercase()), hashes[0]);
        assert_eq!(hash_recovery_code(&codes[0].replace('-', " ")), hashes[0]);
    }

    #[test]
    fn provisioning_gives_an_otpauth_url_and_an_svg() {
        let (b32, url, svg) = provisioning(&new_secret(), "ada@example.com").unwrap();
        assert_eq!(b32.len(), 32);
        assert!(
            url.starts_with("otpauth://totp/Stead:ada%40example.com?"),
            "{url}"
        );
        assert!(url.contains(&format!("secret={b32}")), "{url}");
        assert!(svg.contains("<svg"), "{svg:.80}");
    }
}
