//! The traffic split: a salted hash of the user id into 10,000 buckets.
//!
//! `bucket = u64_be(SHA-256("{salt}:{user_id}")[0..8]) mod 10000`
//!
//! The hash input is the UTF-8 string salt, a colon, and the user id in its decimal (or logged
//! string) form. The first 8 bytes of the digest are read as a big-endian unsigned 64-bit integer
//! and reduced modulo 10,000. This is stable across days and runs (no state, no RNG), and two
//! experiments with different salts split users independently — the overlapping experiment layers
//! of Tang et al., "Overlapping Experiment Infrastructure" (Google, KDD 2010): each layer has its
//! own salt, so a user's arm in one layer says nothing about their arm in another.
//!
//! Test vectors (computed with Python's `hashlib`, checked in `tests/abtest.rs`):
//!
//! | salt          | user_id    | first 8 bytes (hex) | bucket |
//! |---------------|------------|---------------------|--------|
//! | `exp1`        | 0          | `7347f6f0c63fbe46`  | 9398   |
//! | `exp1`        | 1          | `b269f4157839f92f`  | 7311   |
//! | `exp1`        | 42         | `3f7f9afb00ac5bb0`  | 7744   |
//! | `learnrec-ab` | 12345      | `d0b16b59b0331757`  | 6503   |
//! | (empty)       | 7          | `9ba402202d1e3b63`  | 2691   |
//! | `layer-2`     | 4294967295 | `44bcfc3b19609a09`  | 4281   |
//!
//! The same bucket in Spark SQL (`conv` treats the 16 hex digits as an unsigned 64-bit number
//! and returns it as a decimal string, which is exact in `DECIMAL(20,0)`):
//!
//! ```sql
//! CAST(CAST(conv(substr(sha2(concat('exp1', ':', CAST(user_id AS STRING)), 256), 1, 16), 16, 10)
//!           AS DECIMAL(20,0)) % 10000 AS INT) AS bucket
//! ```
//!
//! and in Python: `int.from_bytes(hashlib.sha256(f"{salt}:{uid}".encode()).digest()[:8], "big") % 10000`.
//!
//! Arms own contiguous bucket ranges in the order given: with the default 20% / 20% shares,
//! control gets buckets 0..2000, treatment 2000..4000 and buckets 4000..10000 are unassigned.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::Display;

/// Number of hash buckets; shares are whole buckets (multiples of 0.01%).
pub const BUCKETS: u32 = 10_000;

/// The first 8 bytes of `SHA-256("{salt}:{user}")` as a big-endian u64.
pub fn hash64(salt: &str, user: impl Display) -> u64 {
    let digest = Sha256::digest(format!("{salt}:{user}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// The user's bucket in `0..BUCKETS` for experiment `salt` (see the module docs for the formula).
pub fn bucket(salt: &str, user: impl Display) -> u32 {
    (hash64(salt, user) % BUCKETS as u64) as u32
}

/// One arm's slice of the bucket space: buckets `lo..hi`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmBuckets {
    /// Arm name.
    pub name: String,
    /// Configured traffic share in [0, 1].
    pub share: f64,
    /// First bucket (inclusive).
    pub lo: u32,
    /// Last bucket (exclusive).
    pub hi: u32,
}

/// A salted traffic split of users into arms; users outside every arm are unassigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// The experiment's salt (one per experiment layer).
    pub salt: String,
    /// Arms with their bucket ranges, contiguous from bucket 0 in the order given.
    pub arms: Vec<ArmBuckets>,
}

impl Split {
    /// Builds a split from `(name, share)` pairs. Each share must be a whole number of buckets
    /// (a multiple of 0.0001), positive, and the shares must sum to at most 1.
    pub fn new(salt: &str, shares: &[(&str, f64)]) -> Result<Split> {
        if shares.is_empty() {
            return Err(Error::Invalid("traffic split: no arms".into()));
        }
        let mut arms = Vec::with_capacity(shares.len());
        let mut lo = 0u32;
        for &(name, share) in shares {
            if name.is_empty() {
                return Err(Error::Invalid(
                    "traffic split: an arm has an empty name".into(),
                ));
            }
            if arms.iter().any(|a: &ArmBuckets| a.name == name) {
                return Err(Error::Invalid(format!(
                    "traffic split: arm `{name}` appears twice"
                )));
            }
            if !share.is_finite() || share <= 0.0 || share > 1.0 {
                return Err(Error::Invalid(format!(
                    "traffic split: arm `{name}` has share {share}; it must be in (0, 1]"
                )));
            }
            let n = share * BUCKETS as f64;
            if (n - n.round()).abs() > 1e-6 {
                return Err(Error::Invalid(format!(
                    "traffic split: arm `{name}` has share {share}, not a whole number of the {BUCKETS} buckets"
                )));
            }
            let hi = lo + n.round() as u32;
            if hi > BUCKETS {
                return Err(Error::Invalid(format!(
                    "traffic split: shares sum to more than 1 at arm `{name}`"
                )));
            }
            arms.push(ArmBuckets {
                name: name.to_string(),
                share,
                lo,
                hi,
            });
            lo = hi;
        }
        Ok(Split {
            salt: salt.to_string(),
            arms,
        })
    }

    /// Index of the arm that owns `bucket`, or `None` if unassigned.
    pub fn arm_of_bucket(&self, bucket: u32) -> Option<usize> {
        self.arms
            .iter()
            .position(|a| (a.lo..a.hi).contains(&bucket))
    }

    /// Index of the arm of `user`, or `None` if the user is not in the experiment.
    pub fn assign(&self, user: impl Display) -> Option<usize> {
        self.arm_of_bucket(bucket(&self.salt, user))
    }

    /// Share of traffic left unassigned.
    pub fn unassigned_share(&self) -> f64 {
        let used: u32 = self.arms.iter().map(|a| a.hi - a.lo).sum();
        (BUCKETS - used) as f64 / BUCKETS as f64
    }
}
