//! Auth mode `token`: the password field carries a JWT signed by the application's own backend,
//! so a game can log its players in with its own account system.
//!
//! The server holds only a verification key, from the configuration: an HS256 shared secret, or
//! a public key in PEM (RSA for RS256, Ed25519 for EdDSA; the algorithm follows from the key, and
//! a token whose header names another algorithm is refused, so one key can never be used as
//! another kind). A token is accepted when its signature verifies, it has an `exp` that has not
//! passed, any `nbf` has been reached (both with a small leeway for clock skew), the `iss` and
//! `aud` match when they are configured, and its `sub` is the name logging in.
//!
//! # Size
//!
//! The password field of `LOGIN_REQ` is a `str8`: at most 255 bytes. HS256 and EdDSA tokens with
//! the usual claims fit easily (about 150–200 bytes); an RS256 signature alone is 342 base64
//! characters with a 2048-bit key, so RS256 tokens do not fit through the current login packet.
//! The verifier supports them anyway, for a future login packet with a longer field.
//!
//! Verification is a few microseconds (HMAC, Ed25519) to a few tens of microseconds (RSA) of CPU,
//! so [`TokenAuth`] does it inline on the connection's task.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use suda_protocol::ResultCode;
use thiserror::Error;

use super::{AuthDecision, AuthFuture, Authenticator};

/// Clock skew tolerated on `exp` and `nbf` unless [`JwtVerifier::with_leeway`] says otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Shortest HS256 secret the configuration should accept, in bytes: RFC 7518 §3.2 asks for a key
/// at least as long as the hash output (256 bits). [`JwtVerifier::hs256`] itself takes any
/// length, so the check belongs where the secret is read.
pub const MIN_HS256_SECRET_LEN: usize = 32;

/// Longest token looked at; anything longer is [`JwtError::Malformed`] without being parsed.
/// (The login packet carries at most 255 bytes; this only bounds the work for other callers.)
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Smallest RSA modulus accepted for RS256, in bits.
const MIN_RSA_BITS: usize = 2048;

/// The signature algorithm a [`JwtVerifier`] accepts; exactly one per verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and an RSA public key.
    Rs256,
    /// Ed25519 and an Ed25519 public key.
    EdDsa,
}

impl JwtAlgorithm {
    fn jsonwebtoken(self) -> Algorithm {
        match self {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::Rs256 => Algorithm::RS256,
            JwtAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::EdDsa => "EdDSA",
        })
    }
}

/// Why a token, or a verification key, was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is not a JWT: not three base64url parts, or the header or claims are not JSON
    /// of the expected shape (for example a non-numeric `exp`). The reason is for logs.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token's header names another algorithm than the configured key's.
    #[error("token signed with another algorithm than the configured {0} key")]
    WrongAlgorithm(JwtAlgorithm),
    /// The signature does not verify with the configured key.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` has passed (by more than the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` has not been reached yet (by more than the leeway).
    #[error("token not valid yet")]
    NotYetValid,
    /// A claim this verifier requires is absent: always `exp` and `sub`, and `iss` / `aud` when
    /// an issuer or audience is configured.
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("token issued by the wrong issuer")]
    WrongIssuer,
    /// `aud` does not name the configured audience (or the token has an audience and none is
    /// configured).
    #[error("token meant for another audience")]
    WrongAudience,
    /// The verification key cannot be read (not PEM, or broken key material).
    #[error("invalid verification key: {0}")]
    InvalidKey(&'static str),
    /// The verification key is readable but not usable here: not RSA or Ed25519, a private key,
    /// or an RSA key under 2048 bits.
    #[error("unsupported verification key: {0}")]
    UnsupportedKey(&'static str),
}

/// The claims of a verified token that the server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Subject: the username the token was issued for, as the issuer wrote it.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not before, Unix seconds, if present.
    pub nbf: Option<u64>,
    /// Issued at, Unix seconds, if present (informational: not checked).
    pub iat: Option<u64>,
}

/// The claims as they come off the wire; presence is checked by [`JwtVerifier::verify`] so that
/// a missing claim is reported as such rather than as malformed JSON.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    iat: Option<NumericDate>,
}

/// An RFC 7519 NumericDate: non-negative seconds, integer or not (fractions are dropped).
struct NumericDate(u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NumericDate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number of seconds")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("negative time"))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    // Truncation is the intent: a fraction of a second does not matter here.
                    Ok(NumericDate(v as u64))
                } else {
                    Err(E::custom("time out of range"))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Checks JWTs against one configured key. Build it once at start-up and share it; `verify` takes
/// `&self` and allocates only the claims.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    algorithm: JwtAlgorithm,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is left out: an HS256 secret must not reach a log.
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for HS256 tokens signed with `secret`. The configuration should refuse secrets
    /// shorter than [`MIN_HS256_SECRET_LEN`].
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with_key(DecodingKey::from_secret(secret), JwtAlgorithm::Hs256)
    }

    /// A verifier for tokens signed with the private half of the public key `pem`: an RSA key
    /// (`BEGIN PUBLIC KEY`, or PKCS#1 `BEGIN RSA PUBLIC KEY`; at least 2048 bits) gives RS256, an
    /// Ed25519 key (`BEGIN PUBLIC KEY`) gives EdDSA.
    ///
    /// Errors: [`JwtError::InvalidKey`] for text that is not a PEM public key or whose key
    /// material is broken; [`JwtError::UnsupportedKey`] for a private key (give the public one),
    /// an EC or other key type, or a short RSA key.
    pub fn from_public_key_pem(pem: &[u8]) -> Result<Self, JwtError> {
        match pem_label(pem) {
            Some("PUBLIC KEY" | "RSA PUBLIC KEY") => {}
            Some(label) if label.contains("PRIVATE KEY") => {
                return Err(JwtError::UnsupportedKey(
                    "this is a private key; configure the public key instead",
                ));
            }
            Some("CERTIFICATE") => {
                return Err(JwtError::UnsupportedKey(
                    "this is a certificate; configure its public key (openssl x509 -pubkey -noout)",
                ));
            }
            Some(_) => return Err(JwtError::UnsupportedKey("expected a PEM public key")),
            None => return Err(JwtError::InvalidKey("not PEM text")),
        }
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            check_rsa_key(&key)?;
            return Ok(Self::with_key(key, JwtAlgorithm::Rs256));
        }
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            check_ed25519_key(&key)?;
            return Ok(Self::with_key(key, JwtAlgorithm::EdDsa));
        }
        if DecodingKey::from_ec_pem(pem).is_ok() {
            return Err(JwtError::UnsupportedKey(
                "EC keys (ES256) are not supported; use Ed25519 or RSA",
            ));
        }
        Err(JwtError::InvalidKey("not an RSA or Ed25519 public key"))
    }

    fn with_key(key: DecodingKey, algorithm: JwtAlgorithm) -> Self {
        JwtVerifier {
            key,
            algorithm,
            issuer: None,
            audience: None,
            leeway_secs: DEFAULT_LEEWAY.as_secs(),
        }
    }

    /// Requires `iss` to be present and equal to `issuer`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires `aud` to be present and to be, or (as an array) contain, `audience`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Sets the clock skew tolerated on `exp` and `nbf` (whole seconds; default
    /// [`DEFAULT_LEEWAY`]).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway_secs = leeway.as_secs();
        self
    }

    /// The one algorithm this verifier accepts.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// Verifies `token` at time `now_unix_secs` and returns its claims.
    ///
    /// Checks, in order: shape and header, algorithm, signature, then the claims: `iss`/`aud`
    /// when configured, `sub` and `exp` present, `exp` not passed (a token is expired from
    /// `exp + leeway` on), `nbf` (if any) reached within the leeway. Nothing in the claims is
    /// trusted before the signature has verified.
    pub fn verify(&self, token: &str, now_unix_secs: u64) -> Result<Claims, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed("token too long"));
        }
        let mut validation = Validation::new(self.algorithm.jsonwebtoken());
        // Time is checked below against `now_unix_secs`: the library would read the wall clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
            validation.required_spec_claims.insert("aud".to_owned());
        }
        let data = jsonwebtoken::decode::<RawClaims>(token, &self.key, &validation)
            .map_err(|e| self.classify(e.into_kind()))?;
        let raw = data.claims;
        let sub = raw.sub.ok_or(JwtError::MissingClaim("sub"))?;
        let exp = raw.exp.ok_or(JwtError::MissingClaim("exp"))?.0;
        if now_unix_secs >= exp.saturating_add(self.leeway_secs) {
            return Err(JwtError::Expired);
        }
        let nbf = raw.nbf.map(|d| d.0);
        if let Some(nbf) = nbf
            && now_unix_secs.saturating_add(self.leeway_secs) < nbf
        {
            return Err(JwtError::NotYetValid);
        }
        Ok(Claims {
            sub,
            exp,
            nbf,
            iat: raw.iat.map(|d| d.0),
        })
    }

    fn classify(&self, kind: ErrorKind) -> JwtError {
        match kind {
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                JwtError::WrongAlgorithm(self.algorithm)
            }
            ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
            ErrorKind::InvalidAudience => JwtError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => {
                JwtError::MissingClaim(match claim.as_str() {
                    "iss" => "iss",
                    "aud" => "aud",
                    "sub" => "sub",
                    "nbf" => "nbf",
                    _ => "exp",
                })
            }
            ErrorKind::InvalidToken => JwtError::Malformed("not three dot-separated parts"),
            ErrorKind::Base64(_) => JwtError::Malformed("invalid base64url"),
            ErrorKind::Utf8(_) => JwtError::Malformed("invalid UTF-8"),
            ErrorKind::Json(_) => JwtError::Malformed("header or claims are not the expected JSON"),
            ErrorKind::InvalidClaimFormat(_) => JwtError::Malformed("a claim has the wrong type"),
            // Key problems are caught when the verifier is built; anything else is a refusal.
            _ => JwtError::BadSignature,
        }
    }
}

/// The label of the first `-----BEGIN <label>-----` line, if `pem` has one.
fn pem_label(pem: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &text[start..];
    rest.find("-----").map(|end| &rest[..end])
}

/// Parses the RSA key now, so that a broken key is a start-up error rather than every login
/// failing with a bad signature, and refuses short moduli.
fn check_rsa_key(key: &DecodingKey) -> Result<(), JwtError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::traits::PublicKeyParts;
    let public = rsa::RsaPublicKey::from_pkcs1_der(key.as_bytes())
        .map_err(|_| JwtError::InvalidKey("broken RSA public key"))?;
    if public.n().bits() < MIN_RSA_BITS {
        return Err(JwtError::UnsupportedKey(
            "RSA keys under 2048 bits are refused",
        ));
    }
    Ok(())
}

/// Checks the Ed25519 key now: the right length (the library would panic on a shorter one) and
/// a valid curve point.
fn check_ed25519_key(key: &DecodingKey) -> Result<(), JwtError> {
    if key.as_bytes().len() != 32 {
        return Err(JwtError::InvalidKey("an Ed25519 public key is 32 bytes"));
    }
    // Verifying any signature builds the verifying key: an invalid point is an error, a valid
    // key just answers "no".
    match jsonwebtoken::crypto::verify("AAAA", b"probe", key, Algorithm::EdDSA) {
        Ok(_) => Ok(()),
        Err(_) => Err(JwtError::InvalidKey("broken Ed25519 public key")),
    }
}

/// Auth mode `token`: the password is a JWT whose `sub` is the username logging in (compared
/// case-insensitively, like usernames everywhere).
#[derive(Debug, Clone)]
pub struct TokenAuth {
    verifier: JwtVerifier,
}

impl TokenAuth {
    /// Checks logins with `verifier`.
    pub fn new(verifier: JwtVerifier) -> Self {
        TokenAuth { verifier }
    }

    /// The decision for `username` presenting `token` at `now_unix_secs`; what
    /// [`Authenticator::authenticate`] does with the wall clock.
    pub fn check(&self, username: &str, token: &[u8], now_unix_secs: u64) -> AuthDecision {
        let reject = AuthDecision::Reject(ResultCode::INVALID_CREDENTIALS);
        let Ok(token) = std::str::from_utf8(token) else {
            tracing::debug!(username, "token refused: not UTF-8");
            return reject;
        };
        match self.verifier.verify(token, now_unix_secs) {
            Ok(claims) if claims.sub.eq_ignore_ascii_case(username) => AuthDecision::Proven,
            Ok(claims) => {
                tracing::debug!(username, sub = %claims.sub, "token refused: issued for another user");
                reject
            }
            Err(err) => {
                tracing::debug!(username, %err, "token refused");
                reject
            }
        }
    }
}

impl Authenticator for TokenAuth {
    fn authenticate<'a>(&'a self, username: &'a str, password: &'a [u8]) -> AuthFuture<'a> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Box::pin(std::future::ready(self.check(username, password, now)))
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    const RSA_PRIVATE: &str = include_str!("../../tests/keys/rsa-private.pem");
    const RSA_PUBLIC: &str = include_str!("../../tests/keys/rsa-public.pem");
    const RSA_PUBLIC_PKCS1: &str = include_str!("../../tests/keys/rsa-public-pkcs1.pem");

    fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, key).expect("encode")
    }

    fn hs(claims: Value) -> String {
        sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), &claims)
    }

    fn hs_verifier() -> JwtVerifier {
        JwtVerifier::hs256(SECRET)
    }

    #[test]
    fn hs256_valid_token() {
        let token = hs(json!({"sub": "alice", "exp": NOW + 60, "iat": NOW}));
        let claims = hs_verifier().verify(&token, NOW).expect("valid");
        assert_eq!(
            claims,
            Claims {
                sub: "alice".into(),
                exp: NOW + 60,
                nbf: None,
                iat: Some(NOW)
            }
        );
        assert_eq!(hs_verifier().algorithm(), JwtAlgorithm::Hs256);
        assert!(token.len() <= 255, "fits the login packet: {}", token.len());
    }

    #[test]
    fn expiry_is_enforced_with_leeway() {
        let v = hs_verifier();
        let token = hs(json!({"sub": "alice", "exp": NOW}));
        // Within the default 30 s of leeway.
        assert!(v.verify(&token, NOW).is_ok());
        assert!(v.verify(&token, NOW + 29).is_ok());
        assert_eq!(v.verify(&token, NOW + 30), Err(JwtError::Expired));
        assert_eq!(v.verify(&token, NOW + 3600), Err(JwtError::Expired));
        // Without leeway, `exp` itself is already too late (RFC 7519: "on or after").
        let strict = hs_verifier().with_leeway(Duration::ZERO);
        assert!(strict.verify(&token, NOW - 1).is_ok());
        assert_eq!(strict.verify(&token, NOW), Err(JwtError::Expired));
        let generous = hs_verifier().with_leeway(Duration::from_secs(300));
        assert!(generous.verify(&token, NOW + 299).is_ok());
        // Fractional and huge times are numbers too.
        let token = hs(json!({"sub": "alice", "exp": (NOW + 10) as f64 + 0.5}));
        assert_eq!(v.verify(&token, NOW).map(|c| c.exp), Ok(NOW + 10));
        let token = hs(json!({"sub": "alice", "exp": u64::MAX}));
        assert!(v.verify(&token, NOW).is_ok());
    }

    #[test]
    fn not_before_is_enforced_with_leeway() {
        let v = hs_verifier();
        let token = hs(json!({"sub": "alice", "exp": NOW + 3600, "nbf": NOW + 100}));
        assert_eq!(v.verify(&token, NOW), Err(JwtError::NotYetValid));
        assert_eq!(v.verify(&token, NOW + 69), Err(JwtError::NotYetValid));
        assert_eq!(
            v.verify(&token, NOW + 70).map(|c| c.nbf),
            Ok(Some(NOW + 100))
        );
    }

    #[test]
    fn wrong_secret_is_a_bad_signature() {
        let token = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(b"another secret, just as long...."),
            &json!({"sub": "alice", "exp": NOW + 60}),
        );
        assert_eq!(
            hs_verifier().verify(&token, NOW),
            Err(JwtError::BadSignature)
        );
        // A tampered payload too.
        let good = hs(json!({"sub": "alice", "exp": NOW + 60}));
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = hs(json!({"sub": "mallory", "exp": NOW + 60}));
        parts[1] = forged.split('.').nth(1).expect("payload");
        assert_eq!(
            hs_verifier().verify(&parts.join("."), NOW),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn required_claims() {
        let v = hs_verifier();
        assert_eq!(
            v.verify(&hs(json!({"sub": "alice"})), NOW),
            Err(JwtError::MissingClaim("exp"))
        );
        assert_eq!(
            v.verify(&hs(json!({"exp": NOW + 60})), NOW),
            Err(JwtError::MissingClaim("sub"))
        );
        assert!(matches!(
            v.verify(&hs(json!({"sub": "alice", "exp": "tomorrow"})), NOW),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            v.verify(&hs(json!({"sub": "alice", "exp": -5})), NOW),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            v.verify(&hs(json!({"sub": 42, "exp": NOW + 60})), NOW),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn issuer_and_audience() {
        let v = hs_verifier()
            .with_issuer("https://game.example")
            .with_audience("suda");
        let ok =
            hs(json!({"sub": "a", "exp": NOW + 60, "iss": "https://game.example", "aud": "suda"}));
        assert!(v.verify(&ok, NOW).is_ok());
        let in_list = hs(
            json!({"sub": "a", "exp": NOW + 60, "iss": "https://game.example", "aud": ["x", "suda"]}),
        );
        assert!(v.verify(&in_list, NOW).is_ok());
        let no_iss = hs(json!({"sub": "a", "exp": NOW + 60, "aud": "suda"}));
        assert_eq!(v.verify(&no_iss, NOW), Err(JwtError::MissingClaim("iss")));
        let no_aud = hs(json!({"sub": "a", "exp": NOW + 60, "iss": "https://game.example"}));
        assert_eq!(v.verify(&no_aud, NOW), Err(JwtError::MissingClaim("aud")));
        let bad_iss = hs(json!({"sub": "a", "exp": NOW + 60, "iss": "evil", "aud": "suda"}));
        assert_eq!(v.verify(&bad_iss, NOW), Err(JwtError::WrongIssuer));
        let bad_aud =
            hs(json!({"sub": "a", "exp": NOW + 60, "iss": "https://game.example", "aud": "other"}));
        assert_eq!(v.verify(&bad_aud, NOW), Err(JwtError::WrongAudience));
        // With no audience configured, a token meant for someone is not for us.
        let for_other = hs(json!({"sub": "a", "exp": NOW + 60, "aud": "other"}));
        assert_eq!(
            hs_verifier().verify(&for_other, NOW),
            Err(JwtError::WrongAudience)
        );
    }

    #[test]
    fn malformed_tokens() {
        let v = hs_verifier();
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "!!!.???.###",
            "eyJhbGciOiJub25lIn0.e30.",
        ] {
            assert!(
                matches!(v.verify(bad, NOW), Err(JwtError::Malformed(_))),
                "{bad:?}: {:?}",
                v.verify(bad, NOW)
            );
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            v.verify(&long, NOW),
            Err(JwtError::Malformed("token too long"))
        );
    }

    #[test]
    fn rs256_with_either_public_key_form() {
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("private key");
        let token = sign(
            Algorithm::RS256,
            &key,
            &json!({"sub": "alice", "exp": NOW + 60}),
        );
        for public in [RSA_PUBLIC, RSA_PUBLIC_PKCS1] {
            let v = JwtVerifier::from_public_key_pem(public.as_bytes()).expect("public key");
            assert_eq!(v.algorithm(), JwtAlgorithm::Rs256);
            assert_eq!(v.verify(&token, NOW).map(|c| c.sub), Ok("alice".into()));
            assert_eq!(v.verify(&token, NOW + 3600), Err(JwtError::Expired));
            // An HS256 token is refused outright, even one "signed" with the public key text
            // (the classic algorithm-confusion forgery).
            let confused = sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(public.as_bytes()),
                &json!({"sub": "alice", "exp": NOW + 60}),
            );
            assert_eq!(
                v.verify(&confused, NOW),
                Err(JwtError::WrongAlgorithm(JwtAlgorithm::Rs256))
            );
        }
        // The size problem the module documentation describes.
        assert!(token.len() > 255, "{}", token.len());
    }

    #[test]
    fn eddsa_with_a_key_made_now() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("keygen");
        let signing = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).expect("private");
        let v =
            JwtVerifier::from_public_key_pem(pair.public_key_pem().as_bytes()).expect("public key");
        assert_eq!(v.algorithm(), JwtAlgorithm::EdDsa);
        let token = sign(
            Algorithm::EdDSA,
            &signing,
            &json!({"sub": "alice", "exp": NOW + 600, "iat": NOW, "iss": "game"}),
        );
        assert!(token.len() <= 255, "fits the login packet: {}", token.len());
        assert_eq!(v.verify(&token, NOW).map(|c| c.sub), Ok("alice".into()));
        assert_eq!(v.verify(&token, NOW + 630), Err(JwtError::Expired));
        // Another key's signature does not verify.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("keygen");
        let other = EncodingKey::from_ed_pem(other.serialize_pem().as_bytes()).expect("private");
        let forged = sign(
            Algorithm::EdDSA,
            &other,
            &json!({"sub": "alice", "exp": NOW + 600}),
        );
        assert_eq!(v.verify(&forged, NOW), Err(JwtError::BadSignature));
        // Nor does an RS256 token.
        let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("private key");
        let rs = sign(
            Algorithm::RS256,
            &rsa,
            &json!({"sub": "alice", "exp": NOW + 60}),
        );
        assert_eq!(
            v.verify(&rs, NOW),
            Err(JwtError::WrongAlgorithm(JwtAlgorithm::EdDsa))
        );
    }

    #[test]
    fn unusable_keys_are_refused_at_load() {
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("keygen");
        assert!(matches!(
            JwtVerifier::from_public_key_pem(ec.public_key_pem().as_bytes()),
            Err(JwtError::UnsupportedKey(_))
        ));
        assert!(matches!(
            JwtVerifier::from_public_key_pem(RSA_PRIVATE.as_bytes()),
            Err(JwtError::UnsupportedKey(_))
        ));
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("keygen");
        assert!(matches!(
            JwtVerifier::from_public_key_pem(ed.serialize_pem().as_bytes()),
            Err(JwtError::UnsupportedKey(_))
        ));
        for garbage in [
            &b""[..],
            b"not a key",
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ] {
            assert!(
                matches!(
                    JwtVerifier::from_public_key_pem(garbage),
                    Err(JwtError::InvalidKey(_))
                ),
                "{:?}",
                JwtVerifier::from_public_key_pem(garbage)
            );
        }
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let shown = format!("{:?}", hs_verifier());
        assert!(!shown.contains("0123456789"), "{shown}");
        assert!(shown.contains("Hs256"), "{shown}");
    }

    #[test]
    fn token_auth_checks_the_subject() {
        let auth = TokenAuth::new(hs_verifier());
        let token = hs(json!({"sub": "Alice", "exp": NOW + 60}));
        let reject = AuthDecision::Reject(ResultCode::INVALID_CREDENTIALS);
        assert_eq!(
            auth.check("Alice", token.as_bytes(), NOW),
            AuthDecision::Proven
        );
        assert_eq!(
            auth.check("aLiCe", token.as_bytes(), NOW),
            AuthDecision::Proven
        );
        assert_eq!(auth.check("bob", token.as_bytes(), NOW), reject);
        assert_eq!(auth.check("Alice", token.as_bytes(), NOW + 3600), reject);
        assert_eq!(auth.check("Alice", b"", NOW), reject);
        assert_eq!(auth.check("Alice", b"\xff\xfe", NOW), reject);
    }

    #[tokio::test]
    async fn token_auth_uses_the_wall_clock() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let auth: Box<dyn Authenticator> = Box::new(TokenAuth::new(hs_verifier()));
        let fresh = hs(json!({"sub": "alice", "exp": now + 600}));
        assert_eq!(
            auth.authenticate("alice", fresh.as_bytes()).await,
            AuthDecision::Proven
        );
        let stale = hs(json!({"sub": "alice", "exp": now - 600}));
        assert_eq!(
            auth.authenticate("alice", stale.as_bytes()).await,
            AuthDecision::Reject(ResultCode::INVALID_CREDENTIALS)
        );
    }
}
