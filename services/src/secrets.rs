//! Bearer secrets (API tokens, join tokens, node credentials): 256 random bits with a
//! recognisable prefix, stored only as a SHA-256 hash (the entropy makes a slow hash
//! pointless).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new secret with `prefix`, and its stored hash.
pub fn new_secret(prefix: &str) -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_secret(&secret);
    (secret, hash)
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_carry_their_prefix_and_are_never_equal() {
        let (a, ha) = new_secret("aionx_");
        let (b, _) = new_secret("aionx_");
        assert!(a.starts_with("aionx_") && a.len() == 6 + 43);
        assert_ne!(a, b);
        assert_eq!(ha, hash_secret(&a));
        assert!(!ha.contains(&a[6..]));
    }
}
