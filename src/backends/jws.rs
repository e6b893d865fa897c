//! JWS signature verification (RFC 7515/7518, RFC 8037) with `ring`, the
//! crypto library the TLS stack already links: no second implementation of
//! RSA or elliptic curves in the binary. Asymmetric algorithms only: `none`
//! and the HMAC family are not representable.

use std::fmt;
use std::str::FromStr;

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// A JWS algorithm certbound can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every algorithm (the default allow-list).
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ();
    /// Exact JOSE names (case-sensitive, as RFC 7518 registers them).
    fn from_str(s: &str) -> Result<Self, ()> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(())
    }
}

/// A public key from a JWK, in the form `ring` verifies with.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA modulus and exponent (big-endian, no leading zeros needed).
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// EC P-256: the uncompressed point `04 || x || y`.
    P256(Vec<u8>),
    /// EC P-384: the uncompressed point `04 || x || y`.
    P384(Vec<u8>),
    /// Ed25519: the 32-byte public key.
    Ed25519(Vec<u8>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublicKey::Rsa { .. } => "PublicKey::Rsa",
            PublicKey::P256(_) => "PublicKey::P256",
            PublicKey::P384(_) => "PublicKey::P384",
            PublicKey::Ed25519(_) => "PublicKey::Ed25519",
        })
    }
}

impl PublicKey {
    /// Whether this key may verify `alg` (key type confusion is refused).
    pub fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (
                PublicKey::Rsa { .. },
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (PublicKey::P256(_), ES256)
                | (PublicKey::P384(_), ES384)
                | (PublicKey::Ed25519(_), EdDSA)
        )
    }

    /// Verifies `signature` over `message`. RSA keys under 2048 bits never
    /// verify (ring's `*_2048_8192_*` parameters); ECDSA signatures are the
    /// JWS fixed-length `r || s`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        use Algorithm::*;
        if !self.fits(alg) {
            return false;
        }
        match self {
            PublicKey::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            PublicKey::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicKey::P384(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicKey::Ed25519(key) => UnparsedPublicKey::new(&signature::ED25519, key)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    #[test]
    fn names_are_exact_and_hmac_or_none_do_not_exist() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>(), Ok(a));
        }
        for bad in ["none", "HS256", "rs256", "ES512", ""] {
            assert!(bad.parse::<Algorithm>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ecdsa_and_ed25519_verify_and_refuse_confusion() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        let sig = pair.sign(&rng, b"msg").unwrap();
        let key = PublicKey::P256(pair.public_key().as_ref().to_vec());
        assert!(key.verify(Algorithm::ES256, b"msg", sig.as_ref()));
        assert!(!key.verify(Algorithm::ES256, b"other", sig.as_ref()));
        assert!(!key.verify(Algorithm::ES384, b"msg", sig.as_ref()));
        assert!(!key.verify(Algorithm::RS256, b"msg", sig.as_ref()));

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let sig = pair.sign(b"msg");
        let key = PublicKey::Ed25519(pair.public_key().as_ref().to_vec());
        assert!(key.verify(Algorithm::EdDSA, b"msg", sig.as_ref()));
        assert!(!key.verify(Algorithm::EdDSA, b"msg2", sig.as_ref()));
        assert!(!PublicKey::Rsa {
            n: vec![1; 128],
            e: vec![1, 0, 1]
        }
        .verify(Algorithm::RS256, b"msg", &[0; 128]));
    }
}
