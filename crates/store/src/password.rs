//! Password hashing: Argon2id (RustCrypto `argon2`) with a random 16-byte salt per hash, stored
//! as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//!
//! # Parameters
//!
//! [`HashParams::default`] follows the OWASP Password Storage Cheat Sheet's first Argon2id
//! choice: **m = 19 MiB (19456 KiB), t = 2 passes, p = 1 lane**, 32-byte output. One hash then
//! takes roughly 20–40 ms of one core in a release build and 19 MiB of memory while it runs.
//! The parameters travel inside each PHC string, so [`verify`] checks old hashes with the
//! parameters they were made with; [`needs_rehash`] tells when a stored hash should be
//! replaced at the next successful login after the parameters change.
//!
//! # Not blocking the server
//!
//! Hashing is deliberately slow, so the server must not run it on its async worker threads.
//! [`Hasher`] runs it with `tokio::task::spawn_blocking`, at most `max_concurrent` at a time
//! (a semaphore; default: the number of CPUs): a login storm queues for the permits instead of
//! taking every core and all the memory, and the workers keep serving. [`Hasher::verify_user`]
//! runs a dummy verification when the user does not exist, so a wrong password and an unknown
//! user take the same time. It also keeps Argon2's working memory between hashes (one 19 MiB
//! buffer per permit at the defaults), so a server's memory stays flat however many logins it
//! checks (see [`Hasher`]'s `memory`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory per hash, KiB (`m`). Default 19456 (19 MiB).
    pub memory_kib: u32,
    /// Passes over the memory (`t`). Default 2.
    pub iterations: u32,
    /// Lanes (`p`). Default 1. (Lanes are computed one after another here: more lanes cost
    /// time, not parallelism.)
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Length of the hash output, bytes.
const OUTPUT_LEN: usize = 32;

impl HashParams {
    fn argon2_params(&self) -> Result<Params, PasswordError> {
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|e| PasswordError::Params(e.to_string()))
    }

    /// Checks that the parameters are accepted by Argon2 (for example `memory_kib >= 8 *
    /// parallelism`, `iterations >= 1`).
    pub fn validate(&self) -> Result<(), PasswordError> {
        self.argon2_params().map(drop)
    }
}

/// Why a hash could not be made or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The cost parameters are out of range.
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    /// The stored hash is not a PHC string this module can verify.
    #[error("malformed password hash: {0}")]
    Malformed(String),
    /// Hashing failed (should not happen with valid parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task did not finish (the runtime is shutting down).
    #[error("password hashing was cancelled")]
    Cancelled,
}

/// Hashes `password` with `params` and a fresh random salt; returns the PHC string. Slow on
/// purpose: call it from a blocking context (or use [`Hasher::hash`]).
pub fn hash(password: &[u8], params: &HashParams) -> Result<String, PasswordError> {
    hash_in(password, params, &mut Vec::new())
}

/// Whether `password` matches the PHC string `phc`, using the parameters recorded in `phc`.
/// `Ok(false)` for a wrong password; [`PasswordError::Malformed`] if `phc` cannot be parsed or
/// is not an Argon2 hash. Slow on purpose, like [`hash`].
pub fn verify(password: &[u8], phc: &str) -> Result<bool, PasswordError> {
    verify_in(password, phc, &mut Vec::new())
}

/// [`hash`], with Argon2's working memory in `memory` (grown to the size `params` need).
fn hash_in(
    password: &[u8],
    params: &HashParams,
    memory: &mut Vec<Block>,
) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2_hash(
        Algorithm::Argon2id,
        Version::V0x13,
        params.argon2_params()?,
        password,
        salt.as_salt(),
        memory,
    )
    .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// [`verify`], with Argon2's working memory in `memory` (grown to the size `phc` needs).
/// The same check as `argon2`'s own `PasswordVerifier`, which allocates that memory afresh
/// for every call.
fn verify_in(password: &[u8], phc: &str, memory: &mut Vec<Block>) -> Result<bool, PasswordError> {
    let malformed = |e: password_hash::Error| PasswordError::Malformed(e.to_string());
    let parsed = PasswordHash::new(phc).map_err(malformed)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(PasswordError::Malformed("no salt or no hash".to_owned()));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(malformed)?;
    let version = match parsed.version {
        Some(version) => Version::try_from(version).map_err(|e| malformed(e.into()))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(malformed)?;
    let computed =
        argon2_hash(algorithm, version, params, password, salt, memory).map_err(malformed)?;
    // `Output`'s comparison takes the same time wherever the outputs differ.
    Ok(computed.hash == Some(expected))
}

/// Argon2 of `password` and `salt` as a PHC hash, computed in `memory`, which is grown when it
/// is smaller than `params` need and otherwise reused as it is.
fn argon2_hash<'a>(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: Salt<'a>,
    memory: &mut Vec<Block>,
) -> Result<PasswordHash<'a>, password_hash::Error> {
    let mut salt_buf = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt.decode_b64(&mut salt_buf)?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(output_len, |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut memory[..])?)
    })?;
    Ok(PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt),
        hash: Some(output),
    })
}

/// Whether `phc` was made with other parameters (or algorithm) than `params`, so it should be
/// re-hashed after the next successful login. A malformed string needs a rehash too.
pub fn needs_rehash(phc: &str, params: &HashParams) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    let Ok(recorded) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm != Algorithm::Argon2id.ident()
        || parsed.version != Some(Version::V0x13.into())
        || recorded.m_cost() != params.memory_kib
        || recorded.t_cost() != params.iterations
        || recorded.p_cost() != params.parallelism
        || recorded.output_len() != Some(OUTPUT_LEN)
}

/// Runs hashes and verifications off the async threads, at most `max_concurrent` at once.
/// Cheap to clone; the clones share the limit.
#[derive(Debug, Clone)]
pub struct Hasher {
    params: HashParams,
    permits: Arc<Semaphore>,
    /// A hash of a random password with `params`, made on first use, for [`Hasher::verify_user`].
    dummy: Arc<OnceLock<String>>,
    /// Argon2's working memory (19 MiB a hash at the defaults), kept for the next hash: at most
    /// one buffer per permit, made by the first hashes that run at once.
    ///
    /// Allocated afresh for each hash, it made the server's memory grow with every login: glibc
    /// serves the first such allocation with `mmap`, but freeing it raises glibc's mmap
    /// threshold past its size, so every later one came from the heap, where concurrent hashes
    /// and everything allocated meanwhile fragment it beyond trimming (a server that had
    /// verified 60 logins held ~1 GB; 12 MB with a fixed threshold).
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Hashes and verifications run so far (see [`Hasher::runs`]).
    runs: Arc<AtomicU64>,
}

impl Hasher {
    /// A hasher with `params` and at most `max_concurrent` hashes running at once (at least 1).
    pub fn new(params: HashParams, max_concurrent: usize) -> Result<Self, PasswordError> {
        params.validate()?;
        Ok(Hasher {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy: Arc::new(OnceLock::new()),
            memory: Arc::default(),
            runs: Arc::default(),
        })
    }

    /// A hasher with the default parameters and one concurrent hash per CPU.
    pub fn with_defaults() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Hasher {
            params: HashParams::default(),
            permits: Arc::new(Semaphore::new(cpus)),
            dummy: Arc::new(OnceLock::new()),
            memory: Arc::default(),
            runs: Arc::default(),
        }
    }

    /// Hashes and verifications this hasher (and its clones) has run: each is one slow Argon2
    /// computation, so this is the load that passwords put on the server (a login, a
    /// registration, an unknown user's dummy check; the dummy hash itself, made once, is not
    /// counted).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// The parameters new hashes get.
    pub fn params(&self) -> &HashParams {
        &self.params
    }

    /// [`hash`] on the blocking pool, within the concurrency limit.
    pub async fn hash(&self, password: &[u8]) -> Result<String, PasswordError> {
        let password = password.to_vec();
        let params = self.params;
        self.blocking(move |memory| hash_in(&password, &params, memory))
            .await?
    }

    /// [`verify`] on the blocking pool, within the concurrency limit.
    pub async fn verify(&self, password: &[u8], phc: &str) -> Result<bool, PasswordError> {
        let password = password.to_vec();
        let phc = phc.to_owned();
        self.blocking(move |memory| verify_in(&password, &phc, memory))
            .await?
    }

    /// Checks a login: with `Some(phc)` (the account exists) as [`Hasher::verify`]; with `None`
    /// (no such account) verifies `password` against a dummy hash made with this hasher's
    /// parameters and returns `Ok(false)`, so that both cases cost the same time and an
    /// attacker cannot tell unknown users from wrong passwords by timing.
    pub async fn verify_user(
        &self,
        password: &[u8],
        phc: Option<&str>,
    ) -> Result<bool, PasswordError> {
        match phc {
            Some(phc) => self.verify(password, phc).await,
            None => {
                self.verify_dummy(password).await?;
                Ok(false)
            }
        }
    }

    /// Spends the time of one verification (against a dummy hash made with this hasher's
    /// parameters) and learns nothing.
    pub async fn verify_dummy(&self, password: &[u8]) -> Result<(), PasswordError> {
        let password = password.to_vec();
        let params = self.params;
        let dummy = Arc::clone(&self.dummy);
        self.blocking(move |memory| {
            let phc = match dummy.get() {
                Some(phc) => phc,
                None => {
                    let made = hash_in(b"suda dummy password", &params, memory)?;
                    dummy.get_or_init(|| made)
                }
            };
            verify_in(&password, phc, memory).map(drop)
        })
        .await?
    }

    /// Runs `work` on the blocking pool once a permit is free, with a working-memory buffer
    /// from the pool (empty when none is free yet), which goes back to the pool afterwards.
    /// The permit moves into the task, so it is held until the work ends even if the caller
    /// stops waiting; and as each running task holds one permit and at most one buffer, the
    /// pool never holds more buffers than there are permits.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Cancelled)?;
        let pool = Arc::clone(&self.memory);
        let runs = Arc::clone(&self.runs);
        tokio::task::spawn_blocking(move || {
            runs.fetch_add(1, Ordering::Relaxed);
            let taken = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let mut memory = taken.unwrap_or_default();
            let result = work(&mut memory);
            pool.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
            drop(permit);
            result
        })
        .await
        .map_err(|_| PasswordError::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: the tests are about behaviour, not cost (debug builds of Argon2 are
    /// slow).
    const FAST: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn hash_then_verify() {
        let phc = hash(b"correct horse", &FAST).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify(b"correct horse", &phc).unwrap());
        assert!(!verify(b"correct horsf", &phc).unwrap());
        assert!(!verify(b"", &phc).unwrap());
    }

    #[test]
    fn salts_differ() {
        let one = hash(b"pw", &FAST).unwrap();
        let two = hash(b"pw", &FAST).unwrap();
        assert_ne!(one, two);
        assert!(verify(b"pw", &one).unwrap() && verify(b"pw", &two).unwrap());
    }

    #[test]
    fn phc_strings_are_parsed_and_checked() {
        let phc = hash(b"pw", &FAST).unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::Argon2id.ident());
        assert_eq!(parsed.salt.map(|s| s.as_str().len()), Some(22)); // 16 bytes, base64
        assert_eq!(parsed.hash.map(|h| h.len()), Some(OUTPUT_LEN));
        for bad in [
            "",
            "plaintext",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$md5$abc$def",
        ] {
            assert!(
                matches!(verify(b"pw", bad), Err(PasswordError::Malformed(_))),
                "{bad:?}"
            );
        }
        // A vector from the reference C implementation (Debian's `argon2` tool):
        // `echo -n password | argon2 somesalt -id -t 1 -m 6 -p 1 -l 32 -e`.
        let reference =
            "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$cpx6VEQbwTVZvcpxNIxOVUWZ5xnAipUmAe1cg2GMG70";
        assert!(verify(b"password", reference).unwrap());
        assert!(!verify(b"passwore", reference).unwrap());
    }

    #[test]
    fn default_parameters_are_owasp() {
        let d = HashParams::default();
        assert_eq!((d.memory_kib, d.iterations, d.parallelism), (19456, 2, 1));
        d.validate().unwrap();
        assert!(matches!(
            HashParams {
                memory_kib: 1,
                iterations: 0,
                parallelism: 1
            }
            .validate(),
            Err(PasswordError::Params(_))
        ));
    }

    #[test]
    fn rehash_when_parameters_change() {
        let phc = hash(b"pw", &FAST).unwrap();
        assert!(!needs_rehash(&phc, &FAST));
        assert!(needs_rehash(&phc, &HashParams::default()));
        assert!(needs_rehash("garbage", &FAST));
    }

    #[tokio::test]
    async fn hasher_runs_off_the_async_thread() {
        let hasher = Hasher::new(FAST, 2).unwrap();
        let phc = hasher.hash(b"secret").await.unwrap();
        assert!(hasher.verify(b"secret", &phc).await.unwrap());
        assert!(!hasher.verify(b"wrong", &phc).await.unwrap());
        assert!(hasher.verify_user(b"secret", Some(&phc)).await.unwrap());
        assert!(!hasher.verify_user(b"wrong", Some(&phc)).await.unwrap());
        assert!(matches!(
            hasher.verify(b"secret", "nonsense").await,
            Err(PasswordError::Malformed(_))
        ));
        assert_eq!(hasher.runs(), 6, "one hash and five verifications");
        assert_eq!(hasher.clone().runs(), 6, "clones share the count");
    }

    #[tokio::test]
    async fn unknown_users_get_a_dummy_verification() {
        let hasher = Hasher::new(FAST, 1).unwrap();
        assert!(!hasher.verify_user(b"anything", None).await.unwrap());
        // The dummy hash exists now, made with the hasher's parameters: the unknown-user path
        // did the same Argon2 work as a real verification.
        let dummy = hasher.dummy.get().expect("made on first use").clone();
        assert!(!needs_rehash(&dummy, &FAST));
        // Made once, then reused.
        hasher.verify_dummy(b"again").await.unwrap();
        assert_eq!(hasher.dummy.get(), Some(&dummy));
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hasher = Hasher::new(FAST, 2).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let mut releases = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            releases.push(release);
            let (hasher, running, started_tx) =
                (hasher.clone(), Arc::clone(&running), started_tx.clone());
            tasks.push(tokio::spawn(async move {
                hasher
                    .blocking(move |_| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        started_tx.send(now).unwrap();
                        wait.recv().unwrap();
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap()
            }));
        }
        // Two start; the third waits for a permit.
        assert!(started.recv().await.unwrap() <= 2);
        assert!(started.recv().await.unwrap() <= 2);
        assert_eq!(hasher.permits.available_permits(), 0);
        // Release all three; whichever two hold permits finish and let the third run.
        for release in releases {
            release.send(()).unwrap();
        }
        assert!(started.recv().await.unwrap() <= 2);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(hasher.permits.available_permits(), 2);
    }

    #[test]
    fn hashes_agree_with_argon2s_own_hasher_and_verifier_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Made here, checked by the crate: what this module stores, any Argon2 library reads.
        let ours = hash(b"correct horse", &FAST).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"correct horsf", &parsed)
                .is_err()
        );
        // Made by the crate (as hashes stored before this module managed the memory were),
        // checked here: the same salt and parameters give the same string.
        let salt = PasswordHash::new(&ours).unwrap().salt.unwrap();
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            FAST.argon2_params().unwrap(),
        )
        .hash_password(b"correct horse", salt)
        .unwrap()
        .to_string();
        assert_eq!(theirs, ours);
        assert!(verify(b"correct horse", &theirs).unwrap());
    }

    #[test]
    fn working_memory_is_reused_and_grows_only_for_a_larger_hash() {
        let mut memory = Vec::new();
        let small = hash_in(b"pw", &FAST, &mut memory).unwrap();
        assert_eq!(memory.len(), 64, "64 KiB: 64 blocks of 1 KiB");
        let address = memory.as_ptr();
        assert!(verify_in(b"pw", &small, &mut memory).unwrap());
        assert_eq!(memory.as_ptr(), address, "the same buffer, not a new one");
        // A stored hash made with more memory (older parameters) grows the buffer to fit.
        let larger = HashParams {
            memory_kib: 128,
            ..FAST
        };
        let big = hash(b"pw", &larger).unwrap();
        assert!(verify_in(b"pw", &big, &mut memory).unwrap());
        assert_eq!(memory.len(), 128);
        // A larger buffer serves a smaller hash as it is.
        assert!(verify_in(b"pw", &small, &mut memory).unwrap());
        assert!(!verify_in(b"pW", &small, &mut memory).unwrap());
        assert_eq!(memory.len(), 128);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_keeps_at_most_one_buffer_per_permit() {
        let hasher = Hasher::new(FAST, 2).unwrap();
        let phc = hasher.hash(b"pw").await.unwrap();
        let logins: Vec<_> = (0..16)
            .map(|_| {
                let (hasher, phc) = (hasher.clone(), phc.clone());
                tokio::spawn(async move { hasher.verify(b"pw", &phc).await.unwrap() })
            })
            .collect();
        for login in logins {
            assert!(login.await.unwrap());
        }
        let pool = hasher.memory.lock().unwrap();
        assert!((1..=2).contains(&pool.len()), "{} buffers", pool.len());
        assert!(pool.iter().all(|buffer| buffer.len() == 64));
    }
}
