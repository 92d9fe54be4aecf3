//! Files of the tower commands: per-user sequences as JSON Lines and the item vocabulary
//! written beside a checkpoint.
//!
//! Sequences file: one JSON object per line,
//! `{"user": "u1", "history": ["i1", "i2"], "target": ["i3"]}` (oldest first), as written by
//! `learnrec sequences` from `learnrec_eval::split`.

use super::data::UserSequence;
use crate::{Error, Result};
use learnrec_eval::data::IdMap;
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    user: String,
    history: Vec<String>,
    #[serde(default)]
    target: Vec<String>,
}

/// How unknown item ids are treated when reading sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownItems {
    /// Add them to the item map (ID input at training time).
    Intern,
    /// An error naming the file, line and field (content input, or a trained model's vocabulary).
    Reject,
}

/// Reads a sequences file; user ids are interned in `users`, item ids looked up (or interned) in
/// `items`.
pub fn read_sequences(path: &Path, users: &mut IdMap, items: &mut IdMap, unknown: UnknownItems) -> Result<Vec<UserSequence>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let lno = n + 1;
        let l: Line = serde_json::from_str(line)
            .map_err(|e| Error::format(path, format!("line {lno}"), e.to_string()))?;
        if users.get(&l.user).is_some() {
            return Err(Error::format(path, format!("line {lno}: field `user`"), format!("duplicate user `{}`", l.user)));
        }
        let user = users.intern(&l.user);
        let mut map = |ids: &[String], field: &str| -> Result<Vec<u32>> {
            ids.iter()
                .map(|id| match unknown {
                    UnknownItems::Intern => Ok(items.intern(id)),
                    UnknownItems::Reject => items.get(id).ok_or_else(|| {
                        Error::format(path, format!("line {lno}: field `{field}`"), format!("unknown item `{id}`"))
                    }),
                })
                .collect()
        };
        let history = map(&l.history, "history")?;
        let target = map(&l.target, "target")?;
        out.push(UserSequence { user, history, target });
    }
    if out.is_empty() {
        return Err(Error::format(path, "sequences", "no sequences in the file"));
    }
    Ok(out)
}

/// Path of the item vocabulary beside a checkpoint.
pub fn items_path(dir: &Path) -> std::path::PathBuf {
    dir.join("items.json")
}

/// Writes the item vocabulary (external ids in dense order) atomically.
pub fn save_items(dir: &Path, items: &IdMap) -> Result<()> {
    let json = serde_json::to_vec(items.names()).map_err(|e| Error::Invalid(e.to_string()))?;
    learnrec_eval::atomic::write(&items_path(dir), &json)?;
    Ok(())
}

/// Reads the item vocabulary written by [`save_items`].
pub fn load_items(dir: &Path) -> Result<IdMap> {
    let p = items_path(dir);
    let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
    let names: Vec<String> =
        serde_json::from_slice(&bytes).map_err(|e| Error::format(&p, "items", e.to_string()))?;
    Ok(IdMap::from_names(names))
}

/// Reads a `LearnConfig` from TOML (`.toml`) or JSON (anything else).
pub fn read_config(path: &Path) -> Result<super::LearnConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let is_toml = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if is_toml {
        toml::from_str(&text).map_err(|e| Error::format(path, "config", e.to_string()))
    } else {
        serde_json::from_str(&text).map_err(|e| Error::format(path, "config", e.to_string()))
    }
}
